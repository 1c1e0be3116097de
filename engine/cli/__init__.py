"""``transcripts`` (also ``python -m engine``): a store from the shell.

A thin layer over :class:`engine.Transcripts` and the read model: each
command opens the store named by its first argument (a SQLite file or a
``postgresql://`` URL), calls the library, and prints the result as an
aligned table (``--json`` for JSON on every listing). Engine errors become a
one-line ``Error:`` message and exit code 1; usage mistakes exit with 2.
"""

from __future__ import annotations

import json
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
import msgspec

from engine.errors import EngineError, InvalidArgument, SessionNotFound
from engine.facade import FeedEvent, Transcripts
from engine.state.content import BIDI_CONTROLS, Image, Message, Reasoning, ToolResult, Transcript, whole_number
from engine.state.header import STATUSES

__all__ = ["main"]

_F = TypeVar("_F", bound=Callable[..., Any])


_SEAL_KEY = "transcripts.seal_key"
# What click (8.2 and later) raises for a group run with no command: its help.
_NO_ARGUMENTS: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())
_MAX_KEY_BYTES = 64 * 1024


def _read_seal_key(context: click.Context, _: click.Parameter, path: str | None) -> None:
    if path is not None:
        if not os.path.isfile(path):  # a device or a pipe could be read forever
            raise click.BadParameter(f"{path} is not a regular file", param_hint="--seal-key-file")
        try:
            with open(path, "rb") as file:
                key = file.read(_MAX_KEY_BYTES + 1)
        except OSError as exc:
            raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint="--seal-key-file") from None
        if len(key) > _MAX_KEY_BYTES:
            raise click.BadParameter(
                f"{path} holds over {_MAX_KEY_BYTES:,} bytes: not a seal key file", param_hint="--seal-key-file"
            )
        if len(key) < 16:
            raise click.BadParameter(
                f"{path} holds {len(key)} bytes: a seal key is its file's bytes, at least 16 of them",
                param_hint="--seal-key-file",
            )
        context.meta[_SEAL_KEY] = key


def _store_argument(function: _F) -> _F:
    function = click.option(
        "--seal-key-file",
        type=click.Path(exists=True, dir_okay=False),
        expose_value=False,
        callback=_read_seal_key,
        help="File whose bytes are the seal key the store's rows are sealed with (Transcripts.open(seal_key=)).",
    )(function)
    function = click.option(
        "--prefix", default="transcripts", show_default=True, help="Table prefix the store was opened with."
    )(function)
    return click.argument("store", metavar="STORE")(function)


def _json_option(function: _F) -> _F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(function)


@contextmanager
def _opened(store: str, prefix: str, *, create: bool = False) -> Iterator[Transcripts]:
    """The store, opened only if it is there: looking never creates a file or tables."""
    if "://" not in store and not create and not os.path.isfile(store):
        what = "is a directory" if os.path.isdir(store) else "there is no such file"
        raise click.ClickException(
            f"no store at {store}: {what}; give a SQLite file that exists or a postgresql:// URL"
        )
    key = click.get_current_context().meta.get(_SEAL_KEY)
    with _errors():
        try:
            opened = Transcripts.open(store, table_prefix=prefix, create=create, seal_key=key)
        except InvalidArgument as exc:
            if key is not None and key.endswith(b"\n"):  # echo writes one
                raise InvalidArgument(f"{exc} (the key file ends with a newline, which is part of the key)") from None
            raise
    try:
        with _errors():
            yield opened
    finally:
        opened.close()


def _session(opened: Transcripts, given: str) -> str:
    """SID as given, or the one session whose id starts with it: listings
    and trees show ids cut short."""
    try:
        opened.get(given, last=0)  # the listing row and the newest records, not the whole log
        return given
    except SessionNotFound:
        pass
    starting = [info.id for info in opened.sessions() if info.id.startswith(given)] if given else []
    if len(starting) > 1:
        shown_ids = ", ".join(starting[:5]) + (", ..." if len(starting) > 5 else "")
        raise click.ClickException(
            f"SID {given!r} is the start of {len(starting)} session ids ({shown_ids}): give more of it"
        )
    return starting[0] if starting else given  # none: the command says it is not there


@contextmanager
def _errors() -> Iterator[None]:
    """Engine errors as one line and exit code 1, never a traceback."""
    try:
        yield
    except EngineError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


#: Other names of commands: the Python API's, where the command's differs.
_ALIASES = {"history": "log"}


class _Tool(click.Group):
    """A group whose mistakes are one line: ``Error: ... (see '... --help')``
    and exit code 2, instead of click's usage block; a command also answers
    to its alias (``_ALIASES``)."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, _ALIASES.get(cmd_name, cmd_name))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            if isinstance(exc, _NO_ARGUMENTS) and exc.ctx is not None:  # the tool run bare: its help, as it is
                click.echo(exc.ctx.get_help())
                sys.exit(exc.exit_code)
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"Error: {_one_line(exc.format_message())}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            # One line, and stored text quoted in a message (a damaged row's
            # bytes, a rejected event's field) never reaches the terminal raw.
            click.echo(f"Error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=_Tool, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="transcript-engine")
def cli() -> None:
    """Inspect, search, diff, draw and export a transcript store.

    STORE is a SQLite file or a postgresql:// URL."""


# -- listings -------------------------------------------------------------------


@cli.command()
@_store_argument
@click.option("--title", help="Only sessions whose title contains this text (case-insensitive).")
@click.option("--meta", "metadata", multiple=True, metavar="KEY=VALUE", help="Only sessions with this metadata value.")
@click.option("--status", type=click.Choice(STATUSES), help="Only sessions with this status.")
@click.option("--limit", type=click.IntRange(1, 1_000_000_000), help="At most this many sessions.")
@_json_option
def sessions(
    store: str,
    prefix: str,
    title: str | None,
    metadata: tuple[str, ...],
    status: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """The sessions in the store, newest first."""
    wanted = [_key_value(item) for item in metadata]
    with _opened(store, prefix) as opened:
        rows = []
        for info in opened.sessions(status=status, order="updated", newest_first=True):  # filtered by the listing
            if title is not None and title.lower() not in (info.title or "").lower():
                continue
            if wanted:
                values = opened.get(info.id).metadata
                if any(key not in values or not _matches(values[key], value) for key, value in wanted):
                    continue
            rows.append(
                {
                    "id": info.id,
                    "title": info.title,
                    "status": info.status,
                    "messages": info.message_count,
                    "version": info.version,
                    "updated_at": info.updated_at.isoformat(timespec="microseconds"),
                    "revision": info.revision,
                }
            )
            if limit is not None and len(rows) >= limit:
                break
    _print_rows(rows, as_json, short={"revision"})


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@click.option("--at", "at", metavar="VERSION|REVISION|TIME", help="An event version, a revision id, or an ISO time.")
@click.option("--format", "form", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
def show(store: str, prefix: str, session_id: str, at: str | None, form: str) -> None:
    """One session: its messages now, or as of --at."""
    with _opened(store, prefix) as opened:
        session_id = _session(opened, session_id)
        state = opened.get(session_id, at=_revision_prefix(opened, session_id, _point(at)))
    if form == "json":
        document = {
            "id": state.id,
            "version": state.version,
            "revision": state.revision,
            "title": state.title,
            "metadata": dict(state.metadata),
            "usage": msgspec.to_builtins(state.usage),
            "created_at": state.created_at.isoformat(),
            "updated_at": state.updated_at.isoformat(),
            "lineage": _lineage(state),
            "header": msgspec.to_builtins(msgspec.structs.asdict(state.header)),
            "messages": msgspec.to_builtins(list(state.messages)),
        }
        click.echo(_json_text(document))
        return
    if form == "markdown":
        click.echo(_markdown(state.title or state.id, state.messages))
        return
    click.echo(f"{_bold(_one_line(state.title or '(untitled)'))}  {_one_line(state.id)}")
    count = len(state.messages)
    click.echo(f"version {state.version}, {count} message{'' if count == 1 else 's'}, revision {state.revision}")
    # Each message's id, whole (it is what erase() takes), in a column as
    # wide as the longest.
    ids = [_one_line(message.id or "-") for message in state.messages]
    width = max(map(_width, ids), default=0)
    for index, (message, ident) in enumerate(zip(state.messages, ids, strict=True)):
        text = _shown(" ".join(_message_text(message).split()))
        click.echo(f"{index:>4}  {_role(message.role)}  {_padded(ident, width)}  {text}")


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@_json_option
def log(store: str, prefix: str, session_id: str, as_json: bool) -> None:
    """The session's history: every recorded event, oldest first (also `history`)."""
    with _opened(store, prefix) as opened:
        entries = opened.history(_session(opened, session_id))
    rows = [
        {
            "version": entry.version,
            "at": entry.at.isoformat(timespec="microseconds"),
            "actor": entry.actor,
            "kind": entry.kind,
            "summary": entry.summary,
        }
        for entry in entries
    ]
    _print_rows(rows, as_json)


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@_json_option
def revisions(store: str, prefix: str, session_id: str, as_json: bool) -> None:
    """The session's content commits: appends and rewrites."""
    with _opened(store, prefix) as opened:
        commits = opened.revisions(_session(opened, session_id))
    rows = [
        {
            "version": commit.version,
            "reason": commit.reason.kind,
            "span": f"[{commit.start}, {commit.end}) of {commit.count_before} -> {commit.count_after}",
            "actor": commit.actor,
            "note": commit.reason.note,
            "revision": commit.revision,
        }
        for commit in commits
    ]
    _print_rows(rows, as_json, short={"revision"})


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@click.argument("before", metavar="A")
@click.argument("after", metavar="B")
@_json_option
def diff(store: str, prefix: str, session_id: str, before: str, after: str, as_json: bool) -> None:
    """What changed between two versions or revisions (A and B) of a session."""
    with _opened(store, prefix) as opened:
        session_id = _session(opened, session_id)
        a = _revision_prefix(opened, session_id, _version_or_revision(before))
        b = _revision_prefix(opened, session_id, _version_or_revision(after))
        change = opened.diff(session_id, a, b)
        first, second = opened.get(session_id, at=a), opened.get(session_id, at=b)
    if as_json:
        click.echo(_json_text(msgspec.to_builtins(change)))
        return
    click.echo(f"{change.from_revision} -> {change.to_revision}, from message {change.start}")
    for message in change.removed:
        click.echo(_colour(f"- {message.role}: {_one_line(_message_text(message))}", "red"))
    for message in change.added:
        click.echo(_colour(f"+ {message.role}: {_one_line(_message_text(message))}", "green"))
    if not change.removed and not change.added:
        click.echo("no change to the messages")
    for line in _setting_changes(first, second):
        click.echo(line)


def _setting_changes(first: Any, second: Any) -> list[str]:
    """What ``diff`` compares beside the messages: title, metadata, header,
    each value as its JSON on one line (exact: nothing collapsed)."""
    lines = []
    if first.title != second.title:
        lines.append(f"title: {_json_line(first.title)} -> {_json_line(second.title)}")
    before, after = dict(first.metadata), dict(second.metadata)
    for key in [*before, *(key for key in after if key not in before)]:
        if key not in after:
            lines.append(f"metadata {_json_line(key)}: removed {_json_line(before[key])}")
        elif key not in before:
            lines.append(f"metadata {_json_line(key)}: added {_json_line(after[key])}")
        elif _json_line(before[key]) != _json_line(after[key]):
            lines.append(f"metadata {_json_line(key)}: {_json_line(before[key])} -> {_json_line(after[key])}")
    old, new = msgspec.structs.asdict(first.header), msgspec.structs.asdict(second.header)
    lines += [
        f"{name}: {_json_line(msgspec.to_builtins(old[name]))} -> {_json_line(msgspec.to_builtins(new[name]))}"
        for name in old
        if old[name] != new[name]
    ]
    return lines


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@_json_option
def tree(store: str, prefix: str, session_id: str, as_json: bool) -> None:
    """The fork tree SID belongs to, from its root, with fork points."""
    from engine.viewer import family

    with _opened(store, prefix) as opened:
        session_id = _session(opened, session_id)
        members = family(opened, session_id)
    if as_json:
        click.echo(_json_text([member.as_dict() for member in members]))
        return
    for member in members:
        where = "" if member.source is None else f"  <- {member.source[:8]} v{member.source_version}"
        point = "" if member.fork_index is None else f" at message {member.fork_index}"
        mark = "*" if member.id == session_id else " "
        title, count = _one_line(member.title or "(untitled)"), _count(member.messages, "message")
        line = f"{mark} {'  ' * member.depth}{_one_line(member.id)}  {title}  ({count}){where}{point}"
        click.echo(_shown(line))


@cli.command()
@_store_argument
@click.argument("session_ids", metavar="[SID]...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Verify every session in the store.")
@_json_option
def verify(store: str, prefix: str, session_ids: tuple[str, ...], every: bool, as_json: bool) -> None:
    """Audit sessions: replay each from scratch and check every hash."""
    if not session_ids and not every:
        raise click.UsageError("name sessions to verify, or pass --all")
    if session_ids and every:
        raise click.UsageError("name sessions to verify or pass --all, not both")
    failures, store_failed = 0, []
    results: list[dict[str, Any]] = []

    def report(status: str, check: str, line: str, **fields: Any) -> None:
        """One result: a line for a person, or an entry of the JSON document."""
        results.append({"check": check, "status": status, **fields})
        if not as_json:
            click.echo(_colour(_one_line(line), "red") if status == "fail" else line)

    def failed(check: str, subject: str, exc: BaseException, **fields: Any) -> None:
        error = {"error": type(exc).__name__, "message": str(exc)}
        report("fail", check, f"FAIL {subject}: {type(exc).__name__}: {exc}", **fields, **error)

    with _opened(store, prefix) as opened:
        targets = [_verified_id(opened, sid) for sid in session_ids]
        if every:
            try:
                targets = [info.id for info in opened.sessions()]
            except EngineError as exc:  # a damaged listing row: the audit goes on from the log itself
                store_failed.append("the listing")
                failed("listing", "the listing", exc)
                targets = _logged_sessions(opened)
        for sid in targets:
            try:
                state = opened.verify(sid)
            except SessionNotFound as exc:
                if every:  # listed when the listing was read, deleted since: not damage
                    report("gone", "session", f"gone {_shown(sid)}  deleted since the listing was read", id=sid)
                    continue
                failures += 1
                failed("session", sid, exc, id=sid)
            except EngineError as exc:
                failures += 1
                failed("session", sid, exc, id=sid)
            else:
                count = len(state.messages)
                line = f"ok   {_shown(sid)}  version {state.version}, {_count(count, 'message')}"
                report("ok", "session", line, id=sid, version=state.version, messages=count)
        if every:
            # What no listed session's check reads: events whose listing row
            # is gone, or that no write of the engine makes.
            try:
                events = _feed_length(opened)
            except EngineError as exc:
                store_failed.append("the feed")
                failed("feed", "the feed", exc)
            else:
                report("ok", "feed", f"ok   the feed  {_count(events, 'event')}", events=events)
            # Snapshots no listed session's check reads.
            try:
                unlisted = opened.unlisted_snapshots()
            except EngineError as exc:
                store_failed.append("the snapshots")
                failed("snapshots", "the snapshots", exc)
            else:
                if unlisted:
                    named = ", ".join(repr(session_id) for session_id in unlisted[:5])
                    more = f" and {len(unlisted) - 5} more" if len(unlisted) > 5 else ""
                    problem = f"the store holds snapshots of sessions it does not list: {named}{more}"
                    store_failed.append("the snapshots")
                    report("fail", "snapshots", f"FAIL the snapshots: {problem}", message=problem, sessions=unlisted)
                else:
                    report("ok", "snapshots", "ok   the snapshots  none of a session the store does not list")
    if as_json:
        click.echo(_json_text({"ok": not failures and not store_failed, "results": results}))
    if failures or store_failed:
        failed_parts = [f"{failures} of {_count(len(targets), 'session')}"] * bool(failures) + store_failed
        listed = ", ".join(failed_parts[:-1]) + " and " + failed_parts[-1] if len(failed_parts) > 1 else failed_parts[0]
        raise click.ClickException(f"failed verification: {listed}")


def _verified_id(opened: Transcripts, given: str) -> str:
    """SID as ``_session`` resolves it; as given if reading it fails (its
    check then says why)."""
    try:
        return _session(opened, given)
    except EngineError:
        return given


def _logged_sessions(store: Transcripts) -> list[str]:
    """The sessions that have events in the feed, in the order they began
    (none if the feed cannot be read either: its own check says why)."""
    found: dict[str, None] = {}
    try:
        for page in _feed_pages(store):
            found.update((entry.session_id, None) for entry in page)
    except EngineError:
        pass
    return list(found)


def _feed_length(store: Transcripts) -> int:
    """The events of the store-wide feed, every one read and decoded."""
    return sum(len(page) for page in _feed_pages(store))


def _feed_pages(store: Transcripts) -> Iterator[list[FeedEvent]]:
    after = 0
    while page := store.feed(after=after, limit=10_000):
        yield page
        after = page[-1].position


# -- writing and exporting --------------------------------------------------------


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@click.argument("events", metavar="FILE.jsonl", type=click.File("rb"))
@click.option("--provider", default="openai", show_default=True, help="The provider whose server events these are.")
@click.option("--create", is_flag=True, help="Create the session (with id SID) if it does not exist.")
@click.option("--title", help="With --create: the new session's title (default: the file's name).")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(min=1), help="Events per transaction.")
def ingest(
    store: str, prefix: str, session_id: str, events: Any, provider: str, create: bool, title: str | None, batch: int
) -> None:
    """Ingest a file of realtime server events (one JSON object a line, or
    a JSON array of them). Exits with 1 if any was rejected (the others are
    stored); says which were ignored, and why."""
    from engine.realtime.providers import registered_providers

    if title is not None and not create:
        raise click.BadParameter(
            "names the session --create makes; without --create nothing is made", param_hint="--title"
        )
    if provider not in registered_providers():
        known = ", ".join(sorted(registered_providers()))
        raise click.BadParameter(f"{provider!r} is not a provider; known: {known}", param_hint="--provider")
    try:
        text = events.read().decode("utf-8-sig")  # a byte order mark, as Windows tools write, is not an event
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{events.name} is not UTF-8 text (byte {exc.start}): not a JSONL file") from None
    numbered: list[tuple[int, object]] = [
        (number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()
    ]
    unit = "line"
    if text.lstrip().startswith("["):  # a JSON array of events (as a recorder may save a call), not JSONL
        try:
            array = json.loads(text)
        except ValueError:
            array = None
        if isinstance(array, list):
            numbered, unit = list(enumerate(array, 1)), "event"
    if not numbered:
        raise click.ClickException(
            f"{events.name} holds no events (one JSON object a line, or a JSON array of them); nothing was ingested"
        )
    counts: dict[str, int] = {}
    problems: list[str] = []
    ignored: dict[str, list[int]] = {}  # why -> the lines (or events) ignored for it
    with _opened(store, prefix, create=create) as opened:
        made: int | None = None  # the version of the session this run created
        if create and session_id not in {info.id for info in opened.sessions()}:
            opened.create(session_id=session_id, title=os.path.basename(events.name) if title is None else title)
            made = opened.get(session_id).version
        chunks = [numbered[start : start + batch] for start in range(0, len(numbered), batch)]
        with _progress(chunks, "ingesting") as items:
            for chunk in items:
                try:
                    outcomes = opened.ingest_many(session_id, [line for _, line in chunk], provider=provider)
                except SessionNotFound as exc:
                    if create or exc.session_id != session_id:
                        raise
                    raise click.ClickException(
                        f"no session {_shown(repr(session_id))} in {store}; pass --create to create it with that id"
                    ) from None
                for (number, _), outcome in zip(chunk, outcomes, strict=True):
                    counts[outcome.status] = counts.get(outcome.status, 0) + 1
                    if outcome.status == "rejected":
                        problems.append(_one_line(f"{unit} {number}: rejected: {outcome.reason}"))
                    elif outcome.status == "ignored":
                        ignored.setdefault(outcome.reason or "", []).append(number)
        state = opened.get(session_id)
        if made is not None and state.version == made:
            # Nothing of the file was stored: the session --create made is
            # not left behind, empty (unless another writer wrote to it).
            opened.delete(session_id)
            click.echo(f"nothing was stored, so the session {_shown(repr(session_id))} was not created", err=True)
    for problem in problems[:10]:
        click.echo(problem, err=True)
    if len(problems) > 10:
        click.echo(f"... and {len(problems) - 10} more rejected lines", err=True)
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    messages = _count(len(state.messages), "message")
    click.echo(f"{_count(len(numbered), 'event')}: {summary}; the session has {messages}")
    for why, numbers in ignored.items():  # said, not passed over: a mistyped type is ignored too
        shown_numbers = ", ".join(map(str, numbers[:10])) + (", ..." if len(numbers) > 10 else "")
        click.echo(_one_line(f"ignored ({unit}s {shown_numbers}): {why}"), err=True)
    if problems:
        verb = "was" if len(problems) == 1 else "were"
        raise click.ClickException(f"{len(problems)} of {_count(len(numbered), 'event')} {verb} rejected (see above)")


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@click.option(
    "--format",
    "form",
    type=click.Choice(["jsonl", "markdown", "openai-chat", "openai-responses", "anthropic", "gemini"]),
    default="jsonl",
    show_default=True,
)
@click.option(
    "--lossy",
    is_flag=True,
    help="The model API formats: convert what the format cannot hold (spoken text, incomplete or erased "
    "messages, reasoning for openai-chat...) as engine.formats documents, instead of refusing the session.",
)
@click.option("--at", "at", metavar="VERSION|REVISION|TIME", help="An event version, a revision id, or an ISO time.")
def export(store: str, prefix: str, session_id: str, form: str, lossy: bool, at: str | None) -> None:
    """A session's messages (now, or as of --at) in a model API's format, or as JSON lines or Markdown."""
    from engine import formats

    with _opened(store, prefix) as opened:
        session_id = _session(opened, session_id)
        state = opened.get(session_id, at=_revision_prefix(opened, session_id, _point(at)))
        messages = list(state.messages)
        if form == "jsonl":
            for message in messages:
                click.echo(_terminal_json(msgspec.json.encode(message).decode()))
        elif form == "markdown":
            click.echo(_markdown(state.title or state.id, messages))
        else:
            convert = {
                "openai-chat": formats.to_openai_chat,
                "openai-responses": formats.to_openai_responses,
                "anthropic": formats.to_anthropic,
                "gemini": formats.to_gemini,
            }[form]
            try:
                converted = convert(messages, lossy=lossy)
            except InvalidArgument as exc:  # it names the library's argument; here it is a flag
                raise click.ClickException(f"{type(exc).__name__}: {exc}".replace("lossy=True", "--lossy")) from None
            click.echo(_json_text(converted))


# -- the read model and pictures ----------------------------------------------------


def _read_model_option(function: _F) -> _F:
    return click.option(
        "--read-model",
        "read_model",
        metavar="READ.db",
        help="The read model file (default: STORE.read.db beside a SQLite store).",
    )(function)


def _read_model_path(store: str, read_model: str | None, option: str) -> str:
    if read_model is not None:
        return read_model
    if "://" in store:
        raise click.UsageError(f"a PostgreSQL store needs {option} READ.db (a SQLite file to keep its read model in)")
    return store + ".read.db"


@cli.command()
@_store_argument
@click.option("--into", "into", metavar="READ.db", help="The read model file (default: STORE.read.db).")
@click.option("--rebuild", is_flag=True, help="Start from nothing instead of catching up.")
def project(store: str, prefix: str, into: str | None, rebuild: bool) -> None:
    """Build or catch up the read model: the store as plain SQLite tables."""
    from engine.readmodel import ReadModel

    path = _read_model_path(store, into, "--into")
    with _opened(store, prefix) as opened, ReadModel(path) as model:
        bar = _Counter("projecting")
        applied = (model.rebuild if rebuild else model.catch_up)(opened, progress=bar.update)
        bar.finish()
        position = model.position
    click.echo(f"{applied} events applied to {path} (feed position {position})")


@cli.command()
@_store_argument
@click.argument("query")
@_read_model_option
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@_json_option
def search(store: str, prefix: str, query: str, read_model: str | None, limit: int, as_json: bool) -> None:
    """Full-text search over every session head (catches the read model up first)."""
    from engine.readmodel import ReadModel

    with _opened(store, prefix) as opened, ReadModel(_read_model_path(store, read_model, "--read-model")) as model:
        model.catch_up(opened)
        hits = model.search(query, limit=limit)
    rows = [
        {"session": hit.session_id, "position": hit.position, "role": hit.role, "snippet": hit.snippet} for hit in hits
    ]
    _print_rows(rows, as_json)


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@click.option("--svg", "svg", required=True, metavar="FILE", help="Where to write the picture.")
def graph(store: str, prefix: str, session_id: str, svg: str) -> None:
    """Draw the fork and revision graph of SID's family as an SVG picture."""
    from engine.viewer import draw

    with _opened(store, prefix) as opened:
        picture = draw(opened, _session(opened, session_id))
    try:
        with open(svg, "w", encoding="utf-8") as file:
            file.write(picture)
    except OSError as exc:
        raise click.ClickException(f"cannot write {svg}: {exc.strerror}") from None
    click.echo(f"wrote {svg}")


@cli.command()
@_store_argument
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
def serve(store: str, prefix: str, host: str, port: int) -> None:
    """Browse STORE in a web browser: sessions, transcripts at any version,
    history, forks and diffs. Read-only; Ctrl-C stops it."""
    from engine.viewer import Viewer, ViewerServer, is_loopback

    notice = None
    if not is_loopback(host):
        where = host or "every interface"
        notice = (
            f"This viewer listens on {where}: other hosts can reach it, and anyone who can reach it "
            "reads every transcript in the store."
        )
    with _opened(store, prefix) as opened:
        try:
            server = ViewerServer(Viewer(opened, notice=notice), host, port)
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        except (TypeError, UnicodeError):  # the socket module's answer to a host name it cannot encode
            raise click.ClickException(f"cannot listen on {host!r}: not a host name or address") from None
        if notice:
            click.echo(f"Warning: {notice}", err=True)
        click.echo(f"Viewing {_shown(store)} at {server.url} (read-only; Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            click.echo("stopped")
        finally:
            server.server_close()


# -- helpers ----------------------------------------------------------------------


def _key_value(item: str) -> tuple[str, str]:
    key, equals, value = item.partition("=")
    if not equals or not key:
        raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
    return key, value


def _matches(stored: Any, wanted: str) -> bool:
    """``--meta KEY=VALUE``: VALUE is JSON when it parses (2, true, null,
    "2"), else a string; a string value also matches the text of a number
    or a bool stored under the key."""
    try:
        parsed = json.loads(wanted)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        parsed = wanted
    return bool(stored == parsed and type(stored) is type(parsed)) or (
        isinstance(parsed, (int, float, bool)) and isinstance(stored, str) and stored == wanted
    )


def _event_version(text: str, hint: str | None = None) -> int | None:
    """``text`` as an event version if it is one (digits), else ``None``."""
    if not _DIGITS.fullmatch(text):
        return None
    version = whole_number(text)
    if version is None:
        raise click.BadParameter(f"{text[:40]!r}... is beyond any event version a session has", param_hint=hint)
    return version


def _point(at: str | None) -> int | str | datetime | None:
    if at is None:
        return None
    version = _event_version(at, "--at")
    if version is not None:
        return version
    if at.startswith("sha256:"):
        return at
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise click.BadParameter(
            f"{at!r} is neither an event version (a number), a revision id (sha256:...) nor an ISO time",
            param_hint="--at",
        ) from None
    if moment.tzinfo is None:
        example = moment.replace(tzinfo=UTC).isoformat()
        raise click.BadParameter(f"{at!r} has no time zone; add one, for example {example}", param_hint="--at")
    return moment


def _version_or_revision(point: str) -> int | str:
    version = _event_version(point)
    if version is not None:
        return version
    if point.startswith("sha256:"):
        return point
    raise click.BadParameter(f"{point!r} is neither an event version (a number) nor a revision id (sha256:...)")


def _message_text(message: Message) -> str:
    if message.erased is not None:
        return "(erased)"
    parts = ["(incomplete)"] if message.incomplete else []  # the generation stopped early
    parts += [f"[reasoning: {block.text}]" for block in message.blocks if isinstance(block, Reasoning)]
    parts += [message.text] if message.text else []
    parts += [
        f"[heard up to {block.truncated_at_ms} ms]"  # a barge-in cut playback there
        for block in message.blocks
        if isinstance(block, Transcript) and block.truncated_at_ms is not None
    ]
    parts += [f"[image {block.media_type}]" for block in message.blocks if isinstance(block, Image)]
    parts += [f"[calls {use.name} {use.arguments}]" for use in message.tool_uses]
    for block in message.blocks:
        if isinstance(block, ToolResult):
            text = " ".join(getattr(part, "text", "[image]") for part in block.content)
            parts.append(f"[{block.tool_use_id}{' error' if block.is_error else ''}: {text}]")
    return " ".join(parts) or "(no text)"


def _print_rows(rows: Sequence[dict[str, Any]], as_json: bool, *, short: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    if as_json:
        click.echo(_json_text(list(rows)))
        return
    if not rows:
        click.echo("(none)")
        return
    columns = list(rows[0])
    cells = [[_cell(row[column], column in short) for column in columns] for row in rows]
    widths = [max(len(column), *(_width(line[index]) for line in cells)) for index, column in enumerate(columns)]
    click.echo(_bold("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip()))
    for line in cells:
        click.echo("  ".join(_padded(cell, width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _width(text: str) -> int:
    """The columns ``text`` takes in a terminal: a wide character (CJK,
    most emoji) takes two, a combining mark none."""
    return sum(
        0 if unicodedata.combining(char) else 2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text
    )


def _padded(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _cell(value: Any, short: bool) -> str:
    if value is None:
        return ""
    text = _shown(" ".join(str(value).split()))
    if short and text.startswith("sha256:"):
        return text[:19] + "…"
    if _width(text) <= 80:
        return text
    kept, used = [], 0
    for char in text:  # cut at 79 columns, whatever the characters' widths
        used += _width(char)
        if used > 79:
            break
        kept.append(char)
    return "".join(kept) + "…"


def _tty() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _bold(text: str) -> str:
    return click.style(text, bold=True) if _tty() else text


def _colour(text: str, colour: str) -> str:
    return click.style(text, fg=colour) if _tty() else text


_ROLE_COLOURS = {"user": "cyan", "assistant": "green", "system": "yellow", "tool_results": "magenta"}


def _role(role: str) -> str:
    return _colour(role.ljust(12), _ROLE_COLOURS.get(role, "white"))


@contextmanager
def _progress(items: Sequence[Any], label: str) -> Iterator[Any]:
    """A progress bar on a terminal (stderr), the plain items when piped."""
    if sys.stderr.isatty() and len(items) > 1:
        with click.progressbar(items, label=label, file=sys.stderr) as bar:
            yield bar
    else:
        yield items


class _Counter:
    """A running count on a terminal (stderr); nothing when piped."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.shown = sys.stderr.isatty()

    def update(self, count: int) -> None:
        if self.shown:
            click.echo(f"\r{self.label}: {count} events", nl=False, err=True)

    def finish(self) -> None:
        if self.shown:
            click.echo("", err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script's entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="transcripts")


_DIGITS = re.compile(r"[0-9]+")
# Control characters, and the bidirectional marks, embeddings, overrides
# and isolates, which reorder how a terminal shows the text around them.
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{BIDI_CONTROLS}]")
# What JSON text leaves as it is but a terminal must not get: the C0
# controls are escaped by every JSON encoder already.
_JSON_UNSAFE = re.compile(f"[\\x7f-\\x9f{BIDI_CONTROLS}]")


def _shown(text: str) -> str:
    """Text for a terminal: control characters (escape sequences, bells,
    bidirectional overrides) as visible escapes, never sent as they are."""
    return _CONTROL.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _markdown(title: str, messages: Iterable[Message]) -> str:
    """A session as markdown: the title, then each message's role in bold
    and its text quoted (every line after ``> ``), so that no text of a
    message can pass for another message's heading."""
    parts = [f"# {_one_line(title)}\n"]
    for message in messages:
        quoted = "\n".join(f"> {line}" if line else ">" for line in _shown(_message_text(message)).split("\n"))
        parts.append(f"**{message.role}**\n\n{quoted}\n")
    return "\n".join(parts)


def _one_line(text: str) -> str:
    """Text for one line of a terminal: its whitespace runs (newlines too)
    as single spaces, so a title cannot forge the lines after it."""
    return _shown(" ".join(text.split()))


def _terminal_json(text: str) -> str:
    """JSON text with the characters a terminal must not get as JSON
    escapes (the same JSON: they occur only inside strings)."""
    return _JSON_UNSAFE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _json_text(value: Any) -> str:
    return _terminal_json(json.dumps(value, indent=2, ensure_ascii=False))


def _json_line(value: Any) -> str:
    """A JSON value on one line, exactly: a newline or control character in
    a string is escaped, as JSON escapes it, so it cannot forge a line."""
    return _terminal_json(json.dumps(value, ensure_ascii=False))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _lineage(state: Any) -> dict[str, Any]:
    lineage = state.lineage
    return {
        "root": lineage.root,
        "depth": lineage.depth,
        "source": lineage.source,
        "source_version": lineage.source_version,
        "fork_index": lineage.fork_index,
    }


def _revision_prefix(store: Transcripts, session_id: str, point: Any) -> Any:
    """A revision id as the tables print it (``sha256:`` and its first hex
    digits): the one revision of the session that starts so."""
    if not isinstance(point, str) or len(point) >= 71:
        return point
    if len(point) < 15:
        raise click.BadParameter(f"{point!r}: give at least 8 hex digits of a revision id (sha256:...)")
    known = {store.get(session_id).revision}
    for commit in store.revisions(session_id):
        known.update((commit.revision, commit.parent_revision))
    found = sorted(revision for revision in known if revision.startswith(point.lower()))
    if len(found) != 1:
        what = "no revision" if not found else f"{len(found)} revisions"
        raise click.BadParameter(f"{what} of session {session_id} start with {point!r}")
    return found[0]
