"""The msgspec mapper: events and snapshots to bytes and back.

Stored rows name their type as ``<Type>.v<schema>``. Decoding looks the name up
in the closed registry ``engine.state.events.EVENT_TYPES`` and nowhere else: a row
naming any other type is refused with :class:`UnknownEventType` and nothing is
imported. Rows of an older schema go through the registered upcasters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from engine.errors import (
    ConcurrentWriteError,
    CorruptStore,
    InvalidArgument,
    SessionHasChildren,
    SessionHasForks,
    UnknownEventType,
)
from engine.state.content import Usage, as_stored, shown, whole_number
from engine.state.events import (
    EVENT_NAMES,
    EVENT_TYPES,
    Event,
    EventType,
    MessagesAppended,
    SessionCreated,
    SessionForked,
)
from engine.state.header import Header
from engine.state.records import Records
from engine.state.revisions import id_mask, message_id_key
from engine.state.transcript import KnownAppend, Session
from engine.store._packed import (
    PACKED_APPEND_TOPIC,
    REVISION_ID_TEXT_APPEND_TOPIC,
    TEXT_APPEND_TOPIC,
    pack_append,
    pack_text_append,
    unpack_append,
    unpack_known_appends,
    unpack_revision_id_text_append,
    unpack_text_append,
)
from engine.store._records import ListingFilter

_ENCODER = msgspec.json.Encoder()
_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    name: msgspec.json.Decoder(entry.cls) for name, entry in EVENT_TYPES.items()
}
_TOPICS: dict[type[Event], str] = {cls: f"{name}.v{EVENT_TYPES[name].version}" for cls, name in EVENT_NAMES.items()}
# Stored forms other than JSON, by type name: each decodes to the current
# schema of its event type (see engine.store._packed).
# A row of REVISION_ID_TEXT_APPEND_TOPIC, the one form whose reading needs
# its session's id, is read apart from these (``_decoded_one``).
_APPENDED = EVENT_NAMES[MessagesAppended]
_PACKED: dict[str, tuple[str, Callable[[bytes], Event]]] = {
    PACKED_APPEND_TOPIC: (_APPENDED, unpack_append),
    TEXT_APPEND_TOPIC: (_APPENDED, unpack_text_append),
}
_CURRENT_DECODERS: dict[str, Callable[[bytes], Any]] = {
    **{topic: _DECODERS[EVENT_NAMES[cls]].decode for cls, topic in _TOPICS.items()},
    **{topic: unpack for topic, (_, unpack) in _PACKED.items()},
}


def encode_event(
    event: Event, revision_bytes: bytes | None = None, *, session_id: str | None = None, version: int | None = None
) -> tuple[str, bytes]:
    """The stored topic and bytes of an event of session ``session_id`` at
    ``version``: appended messages packed (``engine.store._packed``) when
    the packed form holds them exactly, everything else as JSON.
    ``revision_bytes``: the 32 bytes of an append's revision, if the caller
    holds them (else they are parsed from its hex digits). Without
    ``session_id`` and ``version`` a message the engine named keeps its id
    in the bytes (10 more)."""
    if type(event) is MessagesAppended:
        mask = id_mask(session_id, version) if session_id is not None and version is not None else None
        text_form = pack_text_append(event, revision_bytes, mask)
        if text_form is not None:
            return text_form
        packed = pack_append(event)
        if packed is not None:
            return PACKED_APPEND_TOPIC, packed
    return _TOPICS[type(event)], _ENCODER.encode(event)


# Every topic this engine can read, with its type and schema version: a
# closed table, looked up once per stored row.
_READABLE: dict[str, tuple[EventType, int]] = {
    f"{name}.v{version}": (entry, version)
    for name, entry in EVENT_TYPES.items()
    for version in range(1, entry.version + 1)
} | {
    topic: (EVENT_TYPES[_APPENDED], EVENT_TYPES[_APPENDED].version)
    for topic in (*_PACKED, REVISION_ID_TEXT_APPEND_TOPIC)
}


#: Every stored type name this engine reads.
READABLE_TOPICS = frozenset(_READABLE)


def _parse_topic(topic: str, where: str) -> tuple[EventType, int]:
    known = _READABLE.get(topic)
    if known is not None:
        return known
    name, dot, version_text = topic.partition(".v")
    entry = EVENT_TYPES.get(name) if dot else None
    version_text, _, form = version_text.partition(".")
    number = whole_number(version_text)
    if entry is not None and number is not None and 1 <= number <= entry.version and form:
        raise UnknownEventType(
            f"{where} holds {name} in a stored form this engine does not know ({topic!r}): the store was "
            "written by a newer transcript-engine; upgrade transcript-engine to read it"
        )
    if entry is None or number is None:
        raise UnknownEventType(
            f"{where} names event type {topic!r}, which is not one of this engine's event "
            f"types ({', '.join(sorted(EVENT_TYPES))}); the row was refused and nothing was "
            "imported. Was the store written by another application?"
        )
    version = number
    if not 1 <= version <= entry.version:
        raise UnknownEventType(
            f"{where} holds {name} schema version {version}, but this engine knows versions "
            f"1 to {entry.version}; upgrade transcript-engine to read this store"
        )
    return entry, version


def decode_events(session_id: str, records: Iterable[tuple[int, str, bytes]]) -> list[tuple[int, Event]]:
    """Decode stored rows of one session into ``(version, event)`` pairs."""
    with as_stored():  # every decode of stored bytes: messages hash as they did when stored
        return [(version, _decoded_one(session_id, version, topic, state)) for version, topic, state in records]


def decode_for_load(
    session_id: str, records: Iterable[tuple[int, str, bytes]]
) -> list[tuple[int, Event | KnownAppend]]:
    """Decode stored rows of one session for a load to fold: as
    :func:`decode_events`, but an append of one text message is a
    :class:`KnownAppend` (no event, no ``datetime``, the revision as bytes)."""

    def other(version: int, topic: str, state: bytes) -> Event:
        return _decoded_one(session_id, version, topic, state)

    with as_stored():
        return unpack_known_appends(records, message_id_key(session_id), other)


def _decoded_one(session_id: str, version: int, topic: str, state: bytes) -> Event:
    decode = _CURRENT_DECODERS.get(topic)
    if decode is not None:  # the fast path: a row of today's schema
        try:
            return decode(state)  # type: ignore[no-any-return]
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError, OverflowError):
            pass  # decode_event below raises the explained error (invalid UTF-8 is a ValueError)
    return _decoded(topic, state, f"session {session_id!r} version {version}", session_id, version)


def decode_event(
    topic: str, state: bytes, where: str, *, session_id: str | None = None, version: int | None = None
) -> Event:
    """Decode one stored row (``where`` names it in error messages) of the
    session ``session_id``, at ``version``: a row of type
    ``MessagesAppended.v1.text-revid`` names its message from both, and
    needs them (another session's id or version names it otherwise).
    ``state`` may be any bytes-like value a driver gives (a ``memoryview``,
    as psycopg2 gives ``bytea``)."""
    if type(topic) is not str:
        raise InvalidArgument(f"topic must be a str (a stored row's type name), got {type(topic).__name__}")
    if isinstance(state, (bytearray, memoryview)):
        state = bytes(state)
    elif type(state) is not bytes:
        raise InvalidArgument(f"state must be bytes (a stored row's bytes), got {type(state).__name__}")
    return _decoded(topic, state, where, session_id, version)


def _decoded(topic: str, state: bytes, where: str, session_id: str | None, version: int | None) -> Event:
    """:func:`decode_event` without its checks of the caller's values: a
    store's own reads come here, where a value of another type is damage
    (SQLite keeps text in any column), which the decoding reports as such."""
    if session_id is not None and type(session_id) is not str:
        raise InvalidArgument(f"session_id must be a str or None, got {type(session_id).__name__}")
    if version is not None and not (type(version) is int and 0 <= version < 2**63):
        raise InvalidArgument(f"version must be an int from 0 to 2**63 - 1, or None; got {shown(version)}")
    entry, schema = _parse_topic(topic, where)
    if topic == REVISION_ID_TEXT_APPEND_TOPIC and (session_id is None or version is None):
        raise InvalidArgument(
            f"{where} is a {topic} row, whose message id is made from its session's id and its version: "
            "pass session_id= and version= to decode it"
        )
    try:
        with as_stored():
            if topic == REVISION_ID_TEXT_APPEND_TOPIC:
                assert session_id is not None and version is not None
                return unpack_revision_id_text_append(state, id_mask(session_id, version))
            packed = _PACKED.get(topic)
            if packed is not None:
                return packed[1](state)
            if schema == entry.version:
                event: Event = _DECODERS[entry.name].decode(state)
                return event
            data = msgspec.json.decode(state)
            if not isinstance(data, dict):
                raise CorruptStore(f"{where}: stored state is not a JSON object")
            while schema < entry.version:
                data = entry.upcasters[schema](data)
                schema += 1
            upgraded: Event = msgspec.convert(data, entry.cls)
            return upgraded
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, ValueError, TypeError, OverflowError) as exc:
        # ValueError covers invalid UTF-8 and content a block refuses; damaged
        # bytes must read as corruption, never as a driver or decoding error.
        raise CorruptStore(f"{where}: cannot decode stored {entry.name}: {exc}") from None


def fork_source(session_id: str, topic: str, state: bytes) -> str | None:
    """The source session of a stored first event, if it is a fork's: what a
    backend checks inside its write transaction, so a fork and the deletion
    of its source can never both succeed."""
    if not topic.startswith("SessionForked."):
        return None
    event = _decoded(topic, state, f"session {session_id!r} version 1", None, None)
    return event.source if isinstance(event, SessionForked) else None


def spawn_parent(session_id: str, topic: str, state: bytes) -> str | None:
    """The parent of a spawned child, from its stored first event: what a
    backend checks inside the write transaction of the child, so a child and
    the deletion of its parent can never both succeed."""
    if not topic.startswith("SessionCreated.") or b"spawn" not in state:  # no decoding for a plain creation
        return None
    event = _decoded(topic, state, f"session {session_id!r} version 1", None, None)
    return event.spawn.parent if isinstance(event, SessionCreated) and event.spawn is not None else None


def spawn_parents(firsts: Iterable[tuple[str, str, bytes]]) -> list[tuple[str, str | None]]:
    """(session id, parent) of sessions from their first records: for the
    listing rows that keep no summary to read the parent from (metadata
    holding NUL, or a row of an earlier build not written since)."""
    return [(session_id, spawn_parent(session_id, topic, bytes(state))) for session_id, topic, state in firsts]


def refuse_children(session_ids: Sequence[str], parents: Iterable[tuple[str, str | None]]) -> None:
    """Raise ``SessionHasChildren`` if a session outside ``session_ids``
    names one inside as its parent. ``parents``: (session id, parent) of the
    listing rows, read in the deleting transaction."""
    doomed = set(session_ids)
    orphans = sorted(child for child, parent in parents if child not in doomed and parent in doomed)
    if orphans:
        raise SessionHasChildren(session_ids[0], orphans)


def refuse_orphans(session_ids: Sequence[str], forks: Iterable[tuple[str, str, bytes]]) -> None:
    """Raise ``SessionHasForks`` if a session outside ``session_ids`` was
    forked from one inside. ``forks`` are first records (session id, type
    name, bytes), read in the deleting transaction."""
    doomed = set(session_ids)
    orphans = sorted(
        child
        for child, topic, state in forks
        if child not in doomed and fork_source(child, topic, bytes(state)) in doomed
    )
    if orphans:
        raise SessionHasForks(session_ids[0], orphans)


def refuse_new_forks(family: Sequence[str], forks: Iterable[tuple[str, str, bytes]]) -> None:
    """Raise ``ConcurrentWriteError`` if a fork of the root of ``family``
    (its first session) exists that ``family`` does not name: it was made
    after the family was read, and an erasure would leave it without its
    erasure record. ``forks`` are first records, as for :func:`refuse_orphans`."""
    root, known = family[0], set(family)
    for child, topic, state in forks:
        if child in known or not topic.startswith("SessionForked."):
            continue
        event = _decoded(topic, bytes(state), f"session {child!r} version 1", None, None)
        if isinstance(event, SessionForked) and event.root == root:
            raise ConcurrentWriteError(child, 1)


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """The verified derived state of a session at one version.

    Message bodies are not copied into snapshots: they are always read from
    the log itself, so a snapshot costs a few hundred bytes however long the
    transcript is. What a snapshot saves is re-hashing the revision chain of
    the events it covers; a load still cross-checks it against those events.
    """

    schema: int = 1
    version: int
    revision: str
    generation: int
    message_count: int
    usage: Usage
    metadata: dict[str, Any]
    title: str | None
    created_at: datetime
    updated_at: datetime
    header: Header = Header()
    records: Records = Records()
    # Where the record chain can be resumed from (``Chain.checkpoint``): the
    # version its span began after, and the link there (hex). Not derived
    # from the state: a read of the tail checks it against the sealed head.
    chain_start: int | None = None
    chain_link: str | None = None

    def derived(self) -> Snapshot:
        """The part a replay of the log gives (what :meth:`of` makes)."""
        return msgspec.structs.replace(self, chain_start=None, chain_link=None)

    @classmethod
    def of(cls, state: Session) -> Snapshot:
        return cls(
            version=state.version,
            revision=state.revision,
            generation=state.generation,
            message_count=len(state.messages),
            usage=state.usage,
            metadata=dict(state.metadata),
            title=state.title,
            created_at=state.created_at,
            updated_at=state.updated_at,
            header=state.header,
            records=state.records,
        )


_SNAPSHOT_DECODER = msgspec.json.Decoder(Snapshot)
_SORTED_JSON = msgspec.json.Encoder(order="sorted")


class SnapshotCheck(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a stored snapshot vouches for: the state at ``version`` (see
    :meth:`vouches_for`), and where the record chain can be resumed from
    (``chain_start``, ``chain_link``: 32 bytes), if it says."""

    version: int
    chain_start: int | None = None
    chain_link: bytes | None = None
    digest: bytes = b""  # of the state's derived snapshot (a stored form 2 snapshot)
    whole: Snapshot | None = None  # the derived snapshot itself (a JSON one, as earlier builds wrote)

    def vouches_for(self, state: Session) -> bool:
        """Whether ``state`` is the state this snapshot was taken of."""
        if self.whole is not None:
            return Snapshot.of(state) == self.whole
        return self.digest in _digests_of(Snapshot.of(state))

    def relinked(self, chain_link: bytes) -> bytes:
        """The stored bytes of this snapshot with another link at its chain
        checkpoint (an erasure re-links the chain), in form 2."""
        digest = self.digest if self.whole is None else _digests_of(self.whole)[0]
        return _PACK((2, self.version, digest, self.chain_start, chain_link))


class _PackedSnapshot(msgspec.Struct, array_like=True, forbid_unknown_fields=True, gc=False):
    schema: int
    version: int
    digest: bytes
    chain_start: int | None = None
    chain_link: bytes | None = None


_PACKED_SNAPSHOT_DECODER = msgspec.msgpack.Decoder(_PackedSnapshot)
_PACK = msgspec.msgpack.Encoder().encode


def _digest_of(snapshot: Snapshot) -> bytes:
    """The SHA-256 of a derived snapshot's JSON, keys and fields sorted (so
    the order a dict was filled in does not count)."""
    return hashlib.sha256(_SORTED_JSON.encode(snapshot)).digest()


def _digests_of(snapshot: Snapshot) -> tuple[bytes, bytes]:
    """The digests a snapshot of this state may hold: its canonical one
    (what this build writes), and the one of the state as it is. msgspec
    leaves out a field at its default only if it holds the default object
    itself: a header made with the literal ``"started"`` has no status in
    its JSON, the same header read back from the log has one. Earlier
    builds wrote the digest of the live state, whichever it held."""
    return _digest_of(_canonical(snapshot)), _digest_of(snapshot)


_FIELDS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _fields_of(cls: type) -> tuple[tuple[str, Any], ...]:
    """Each field of a struct type, with its default: ``msgspec.structs.fields``
    evaluates the class's annotations anew on every call (about 150 µs), which
    made every snapshot and every load from one pay for it again."""
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple((field.name, field.default) for field in msgspec.structs.fields(cls))
    return found


def _canonical(value: Any) -> Any:
    """``value`` with every field of its structs (nested, and in tuples)
    that equals its default holding the default object itself, so that
    encoding leaves it out whichever object it was."""
    if isinstance(value, msgspec.Struct):
        changes = {}
        for name, default in _fields_of(type(value)):
            current = getattr(value, name)
            canonical = _canonical(current)
            if (
                default is not msgspec.NODEFAULT
                and canonical is not default
                and type(canonical) is type(default)
                and canonical == default
            ):
                canonical = default
            if canonical is not current:
                changes[name] = canonical
        return msgspec.structs.replace(value, **changes) if changes else value
    if type(value) is tuple:
        items = tuple(_canonical(item) for item in value)
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def encode_snapshot(state: Session, checkpoint: tuple[int, bytes] | None = None) -> bytes:
    """A snapshot's stored bytes (form 2): a msgpack array of the form's
    number, the version, the digest of the state's derived snapshot and the
    chain checkpoint; about 75 bytes, whatever the state holds. It vouches
    for the state as the whole derived snapshot did (earlier builds stored
    that as JSON, about 400 bytes, more with metadata)."""
    start, link = checkpoint if checkpoint is not None else (None, None)
    return _PACK((2, state.version, _digests_of(Snapshot.of(state))[0], start, link))


def decode_snapshot(session_id: str, data: bytes) -> SnapshotCheck:
    where = f"snapshot of session {session_id!r}"
    try:
        if data[:1] == b"{":  # form 1: the derived snapshot as JSON
            whole = _SNAPSHOT_DECODER.decode(data)
            try:
                link = None if whole.chain_link is None else bytes.fromhex(whole.chain_link)
            except ValueError:
                link = None  # a damaged hint: reads that use it check the whole log instead
            return SnapshotCheck(
                version=whole.version, chain_start=whole.chain_start, chain_link=link, whole=whole.derived()
            )
        packed = _PACKED_SNAPSHOT_DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
        raise CorruptStore(f"{where}: cannot decode: {exc}") from None
    if packed.schema != 2 or len(packed.digest) != 32 or (packed.chain_start is None) != (packed.chain_link is None):
        raise CorruptStore(f"{where}: not a snapshot of form 2 (a number 2, a 32-byte digest, a whole checkpoint)")
    return SnapshotCheck(
        version=packed.version, chain_start=packed.chain_start, chain_link=packed.chain_link, digest=packed.digest
    )


# -- listing summaries ------------------------------------------------------------

_SUMMARY_ENCODER = msgspec.json.Encoder(order="sorted")


class ListingSummary(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a listing row keeps for filters and listings (see ``SessionRow.summary``)."""

    status: str
    tags: tuple[str, ...]
    pinned: bool
    owner: str | None
    parent: str | None
    metadata: dict[str, Any]


_SUMMARY_DECODER = msgspec.json.Decoder(ListingSummary)


def listing_summary(state: Session) -> str | None:
    """The summary of a session's listing row, as JSON text (keys sorted);
    ``None`` for metadata holding a NUL character, which PostgreSQL's jsonb
    cannot hold (such a row is filtered from the session's state)."""
    text = _SUMMARY_ENCODER.encode(summary_of(state)).decode()
    return None if "\\u0000" in text else text


def same_json(stored: Any, wanted: Any) -> bool:
    """Equal as JSON values: ``1`` is not ``True`` nor ``1.0``, as metadata
    keeps them apart."""
    try:
        return _SUMMARY_ENCODER.encode(stored) == _SUMMARY_ENCODER.encode(wanted)
    except (TypeError, ValueError):
        return False


def decode_summary(session_id: str, text: str) -> ListingSummary:
    try:
        return _SUMMARY_DECODER.decode(text)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CorruptStore(f"the listing row of session {session_id!r} has a damaged summary: {exc}") from None


def forked_summary(session_id: str, text: str) -> str:
    """The listing summary of a fork of a source's whole head, from the
    source's summary text: what ``listing_summary`` gives the fork's first
    state (the source's tags, owner and metadata; a new status, not pinned,
    no parent: a fork is not a spawned child)."""
    source = decode_summary(session_id, text)
    summary = msgspec.structs.replace(source, status=Header().status, pinned=False, parent=None)
    return _SUMMARY_ENCODER.encode(summary).decode()


def summary_of(state: Session) -> ListingSummary:
    """The summary of ``state`` that listings show and filter on."""
    header = state.header
    return ListingSummary(
        status=header.status,
        tags=header.tags,
        pinned=header.pinned,
        owner=header.owner,
        parent=state.parent,
        metadata=dict(state.metadata),
    )


def summary_matches(summary: ListingSummary, wanted: ListingFilter) -> bool:
    """Whether a listing row's summary matches ``wanted`` exactly."""
    if wanted.status is not None and summary.status != wanted.status:
        return False
    if wanted.owner is not None and summary.owner != wanted.owner:
        return False
    if wanted.parent is not None and summary.parent != wanted.parent:
        return False
    if wanted.pinned is not None and summary.pinned is not wanted.pinned:
        return False
    if not set(wanted.tags) <= set(summary.tags):
        return False
    metadata = summary.metadata
    return all(key in metadata and same_json(metadata[key], value) for key, value in wanted.metadata)
