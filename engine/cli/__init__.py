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
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import click
import msgspec

from engine.errors import EngineError
from engine.facade import Transcripts
from engine.state.content import Message, ToolResult

__all__ = ["main"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _store_argument(function: _F) -> _F:
    function = click.option(
        "--prefix", default="transcripts", show_default=True, help="Table prefix the store was opened with."
    )(function)
    return click.argument("store", metavar="STORE")(function)


def _json_option(function: _F) -> _F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(function)


@contextmanager
def _opened(store: str, prefix: str) -> Iterator[Transcripts]:
    if "://" not in store and not os.path.exists(store):
        raise click.ClickException(f"no store at {store}: give a SQLite file that exists or a postgresql:// URL")
    with _errors():
        opened = Transcripts.open(store, table_prefix=prefix)
    try:
        with _errors():
            yield opened
    finally:
        opened.close()


@contextmanager
def _errors() -> Iterator[None]:
    """Engine errors as one line and exit code 1, never a traceback."""
    try:
        yield
    except EngineError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


class _Tool(click.Group):
    """A group whose mistakes are one line: ``Error: ... (see '... --help')``
    and exit code 2, instead of click's usage block."""

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
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"Error: {exc.format_message()}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
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
@click.option("--limit", type=click.IntRange(min=1), help="At most this many sessions.")
@_json_option
def sessions(
    store: str, prefix: str, title: str | None, metadata: tuple[str, ...], limit: int | None, as_json: bool
) -> None:
    """The sessions in the store, newest first."""
    wanted = [_key_value(item) for item in metadata]
    with _opened(store, prefix) as opened:
        rows = []
        for info in sorted(opened.sessions(), key=lambda info: (info.updated_at, info.id), reverse=True):
            if title is not None and title.lower() not in (info.title or "").lower():
                continue
            if wanted:
                values = opened.get(info.id).metadata
                if any(str(values.get(key)) != value and values.get(key) != _parsed(value) for key, value in wanted):
                    continue
            rows.append(
                {
                    "id": info.id,
                    "title": info.title,
                    "messages": info.message_count,
                    "version": info.version,
                    "updated_at": info.updated_at.isoformat(timespec="seconds"),
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
        state = opened.get(session_id, at=_point(at))
    if form == "json":
        document = {"id": state.id, "version": state.version, "revision": state.revision, "title": state.title}
        document["messages"] = msgspec.to_builtins(list(state.messages))
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    if form == "markdown":
        click.echo(f"# {state.title or state.id}\n")
        for message in state.messages:
            click.echo(f"**{message.role}**\n\n{_message_text(message)}\n")
        return
    click.echo(f"{_bold(state.title or '(untitled)')}  {state.id}")
    click.echo(f"version {state.version}, {len(state.messages)} messages, revision {state.revision}")
    for index, message in enumerate(state.messages):
        click.echo(f"{index:>4}  {_role(message.role)}  {_message_text(message)}")


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@_json_option
def log(store: str, prefix: str, session_id: str, as_json: bool) -> None:
    """The session's history: every recorded event, oldest first."""
    with _opened(store, prefix) as opened:
        entries = opened.history(session_id)
    rows = [
        {
            "version": entry.version,
            "at": entry.at.isoformat(timespec="seconds"),
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
        commits = opened.revisions(session_id)
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
        change = opened.diff(session_id, _version_or_revision(before), _version_or_revision(after))
    if as_json:
        click.echo(json.dumps(msgspec.to_builtins(change), indent=2, ensure_ascii=False))
        return
    click.echo(f"{change.from_revision} -> {change.to_revision}, from message {change.start}")
    for message in change.removed:
        click.echo(_colour(f"- {message.role}: {_message_text(message)}", "red"))
    for message in change.added:
        click.echo(_colour(f"+ {message.role}: {_message_text(message)}", "green"))
    if not change.removed and not change.added:
        click.echo("no change")


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@_json_option
def tree(store: str, prefix: str, session_id: str, as_json: bool) -> None:
    """The fork tree SID belongs to, from its root, with fork points."""
    from engine.cli._graph import family

    with _opened(store, prefix) as opened:
        members = family(opened, session_id)
    if as_json:
        click.echo(json.dumps([member.as_dict() for member in members], indent=2, ensure_ascii=False))
        return
    for member in members:
        where = "" if member.source is None else f"  <- {member.source[:8]} v{member.source_version}"
        point = "" if member.fork_index is None else f" at message {member.fork_index}"
        mark = "*" if member.id == session_id else " "
        title = member.title or "(untitled)"
        click.echo(f"{mark} {'  ' * member.depth}{member.id}  {title}  ({member.messages} messages){where}{point}")


@cli.command()
@_store_argument
@click.argument("session_ids", metavar="[SID]...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Verify every session in the store.")
def verify(store: str, prefix: str, session_ids: tuple[str, ...], every: bool) -> None:
    """Audit sessions: replay each from scratch and check every hash."""
    if not session_ids and not every:
        raise click.UsageError("name sessions to verify, or pass --all")
    failures = 0
    with _opened(store, prefix) as opened:
        targets = [info.id for info in opened.sessions()] if every else list(session_ids)
        with _progress(targets, "verifying") as items:
            for sid in items:
                try:
                    state = opened.verify(sid)
                except EngineError as exc:
                    failures += 1
                    click.echo(_colour(f"FAIL {sid}: {type(exc).__name__}: {exc}", "red"))
                else:
                    click.echo(f"ok   {sid}  version {state.version}, {len(state.messages)} messages")
    if failures:
        raise click.ClickException(f"{failures} of {len(targets)} sessions failed verification")


# -- writing and exporting --------------------------------------------------------


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@click.argument("events", metavar="FILE.jsonl", type=click.File("r", encoding="utf-8"))
@click.option("--provider", default="openai", show_default=True, help="The provider whose server events these are.")
@click.option("--create", is_flag=True, help="Create the session (with id SID) if it does not exist.")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(min=1), help="Events per transaction.")
def ingest(store: str, prefix: str, session_id: str, events: Any, provider: str, create: bool, batch: int) -> None:
    """Ingest a file of realtime server events (one JSON object a line)."""
    lines = [line for line in events.read().splitlines() if line.strip()]
    counts: dict[str, int] = {}
    with _opened(store, prefix) as opened:
        if create and session_id not in {info.id for info in opened.sessions()}:
            opened.create(session_id=session_id, title=os.path.basename(events.name))
        chunks = [lines[start : start + batch] for start in range(0, len(lines), batch)]
        with _progress(chunks, "ingesting") as items:
            for chunk in items:
                for outcome in opened.ingest_many(session_id, chunk, provider=provider):
                    counts[outcome.status] = counts.get(outcome.status, 0) + 1
        state = opened.get(session_id)
    summary = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    click.echo(f"{len(lines)} events: {summary or 'none'}; the session has {len(state.messages)} messages")


@cli.command()
@_store_argument
@click.argument("session_id", metavar="SID")
@click.option(
    "--format",
    "form",
    type=click.Choice(["jsonl", "markdown", "openai-chat", "anthropic"]),
    default="jsonl",
    show_default=True,
)
@click.option("--drop-reasoning", is_flag=True, help="openai-chat: leave reasoning blocks out instead of refusing.")
def export(store: str, prefix: str, session_id: str, form: str, drop_reasoning: bool) -> None:
    """A session's messages in a model API's format, or as JSON lines or Markdown."""
    from engine.formats import to_anthropic, to_openai_chat

    with _opened(store, prefix) as opened:
        state = opened.get(session_id)
        messages = list(state.messages)
        if form == "jsonl":
            for message in messages:
                click.echo(msgspec.json.encode(message).decode())
        elif form == "markdown":
            click.echo(f"# {state.title or state.id}\n")
            for message in messages:
                click.echo(f"**{message.role}**\n\n{_message_text(message)}\n")
        elif form == "openai-chat":
            click.echo(
                json.dumps(to_openai_chat(messages, drop_reasoning=drop_reasoning), indent=2, ensure_ascii=False)
            )
        else:
            click.echo(json.dumps(to_anthropic(messages), indent=2, ensure_ascii=False))


# -- the read model and pictures ----------------------------------------------------


def _read_model_option(function: _F) -> _F:
    return click.option(
        "--read-model",
        "read_model",
        metavar="READ.db",
        help="The read model file (default: STORE.read.db beside a SQLite store).",
    )(function)


def _read_model_path(store: str, read_model: str | None) -> str:
    if read_model is not None:
        return read_model
    if "://" in store:
        raise click.UsageError("a PostgreSQL store needs --read-model READ.db (a SQLite file to keep it in)")
    return store + ".read.db"


@cli.command()
@_store_argument
@click.option("--into", "into", metavar="READ.db", help="The read model file (default: STORE.read.db).")
@click.option("--rebuild", is_flag=True, help="Start from nothing instead of catching up.")
def project(store: str, prefix: str, into: str | None, rebuild: bool) -> None:
    """Build or catch up the read model: the store as plain SQLite tables."""
    from engine.readmodel import ReadModel

    path = _read_model_path(store, into)
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
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@_json_option
def search(store: str, prefix: str, query: str, read_model: str | None, limit: int, as_json: bool) -> None:
    """Full-text search over every session head (catches the read model up first)."""
    from engine.readmodel import ReadModel

    with _opened(store, prefix) as opened, ReadModel(_read_model_path(store, read_model)) as model:
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
    from engine.cli._graph import draw

    with _opened(store, prefix) as opened:
        picture = draw(opened, session_id)
    try:
        with open(svg, "w", encoding="utf-8") as file:
            file.write(picture)
    except OSError as exc:
        raise click.ClickException(f"cannot write {svg}: {exc.strerror}") from None
    click.echo(f"wrote {svg}")


# -- helpers ----------------------------------------------------------------------


def _key_value(item: str) -> tuple[str, str]:
    key, equals, value = item.partition("=")
    if not equals or not key:
        raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--meta")
    return key, value


def _parsed(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _point(at: str | None) -> int | str | datetime | None:
    if at is None:
        return None
    if at.isdigit():
        return int(at)
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
        raise click.BadParameter(f"{at!r} has no time zone; add one, for example {at}+00:00", param_hint="--at")
    return moment


def _version_or_revision(point: str) -> int | str:
    if point.isdigit():
        return int(point)
    if point.startswith("sha256:"):
        return point
    raise click.BadParameter(f"{point!r} is neither an event version (a number) nor a revision id (sha256:...)")


def _message_text(message: Message) -> str:
    if message.erased is not None:
        return "(erased)"
    parts = [message.text] if message.text else []
    parts += [f"[calls {use.name} {use.arguments}]" for use in message.tool_uses]
    for block in message.blocks:
        if isinstance(block, ToolResult):
            text = " ".join(getattr(part, "text", "[image]") for part in block.content)
            parts.append(f"[{block.tool_use_id}{' error' if block.is_error else ''}: {text}]")
    return " ".join(parts) or "(no text)"


def _print_rows(rows: Sequence[dict[str, Any]], as_json: bool, *, short: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    if as_json:
        click.echo(json.dumps(list(rows), indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("(none)")
        return
    columns = list(rows[0])
    cells = [[_cell(row[column], column in short) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[index]) for line in cells)) for index, column in enumerate(columns)]
    click.echo(_bold("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip()))
    for line in cells:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _cell(value: Any, short: bool) -> str:
    if value is None:
        return ""
    text = " ".join(str(value).split())
    if short and text.startswith("sha256:"):
        return text[:19] + "…"
    return text if len(text) <= 80 else text[:79] + "…"


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
