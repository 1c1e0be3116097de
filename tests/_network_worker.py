"""Run by ``test_postgres_network`` as root in a network namespace of its
own (``unshare -n``): a private server on the namespace's loopback, a store
on it, then the loopback taken down, so that the server is gone from the
network: nothing it sends arrives, nothing sent to it is answered, and no
reset ever comes. Prints, as JSON, what each call did and how long it took.

Arguments: the folder of the server's binaries, then the connection string's
query (libpq settings) to open the store with."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any


def _link(state: str) -> None:
    subprocess.run(["ip", "link", "set", "lo", state], check=True)


def main(binaries: str, query: str) -> dict[str, Any]:
    from engine import Message, Transcripts

    _link("up")
    root = tempfile.mkdtemp(prefix="engine-network-")
    shutil.chown(root, "postgres")  # initdb refuses root: the server runs as postgres
    data = os.path.join(root, "data")

    def run(*command: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, timeout=120)

    run(f"{binaries}/initdb", "-D", data, "-A", "trust", "-U", "postgres")
    with open(os.path.join(data, "postgresql.conf"), "a") as conf:
        conf.write(
            f"port = 5432\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
            "fsync = off\nshared_buffers = 16MB\n"
        )
    run(f"{binaries}/pg_ctl", "-D", data, "-l", data + ".log", "-w", "start")
    result: dict[str, Any] = {}

    def timed(name: str, call: Callable[[], object]) -> str:
        started = time.monotonic()
        try:
            call()
            outcome = "returned"
        except Exception as exc:
            outcome = type(exc).__name__
        result.setdefault(name, []).append([outcome, time.monotonic() - started])
        return outcome

    try:
        store = Transcripts.open("postgresql://postgres@127.0.0.1:5432/postgres" + query)
        sid = store.create()
        store.append(sid, Message.user("before"))
        # 1. Calls made just after the server is gone.
        _link("down")
        timed("append", lambda: store.append(sid, Message.user("during")))
        timed("history", lambda: store.history(sid))
        timed("sessions", lambda: store.sessions())
        timed("feed", lambda: store.feed())
        _link("up")
        timed("after", lambda: store.append(sid, Message.user("after")))
        result["messages"] = [m.text for m in store.get(sid).messages]
        # 2. An append whose connection has been idle (it is checked first)
        # while the pool holds several idle connections.
        pool = store._repository.backend._recorder.datastore.pool  # type: ignore[attr-defined]
        held = [pool.getconn() for _ in range(5)]
        for conn in held:
            pool.putconn(conn)
        time.sleep(6)  # longer than the appends' connection may idle unchecked
        _link("down")
        timed("idle append", lambda: store.append(sid, Message.user("idle")))
        # 3. A longer outage, with calls going on, then the server back.
        outage = time.monotonic()
        while time.monotonic() - outage < 30:
            timed("outage sessions", lambda: store.sessions())
            time.sleep(2)
        _link("up")
        back = time.monotonic()
        while timed("recovery", lambda: store.append(sid, Message.user("back"))) != "returned":
            if time.monotonic() - back > 120:
                break
            time.sleep(0.5)
        result["recovered after"] = time.monotonic() - back
        store.close()
    finally:
        run(f"{binaries}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
