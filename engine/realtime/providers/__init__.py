"""Provider adapters: raw server events to canonical realtime events, found
by name in a registry.

An adapter is a function from one raw event (whatever the provider sends: a
dict, JSON text, bytes) to the canonical events it means, or ``Rejected``
(malformed or unsafe: not stored) or ``Ignored`` (nothing to do with the
transcript). ``openai`` is registered here; register your own with
:func:`register_provider` and pass its name as ``provider=`` to ``ingest``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeAlias

from engine.errors import InvalidArgument
from engine.realtime.providers import openai
from engine.realtime.providers._outcomes import Ignored, Rejected
from engine.state.content import shown
from engine.state.realtime_events import RealtimeEvent

__all__ = ["Adapter", "Ignored", "Rejected", "adapter_for", "is_trusted", "register_provider", "registered_providers"]

Adapter: TypeAlias = Callable[[object], "list[RealtimeEvent] | Rejected | Ignored"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
_ADAPTERS: dict[str, Adapter] = {"openai": openai.translate}
# Adapters whose output needs no second check (the engine's own, tested as
# such); a caller's adapter is held to what canonical input is.
_TRUSTED: set[Adapter] = {openai.translate}


def register_provider(name: str, adapter: Adapter, *, replace: bool = False) -> None:
    """Make ``provider=name`` translate raw events with ``adapter``. A name
    already registered (``openai`` included) is refused unless ``replace``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidArgument(f"a provider name is 1-40 lowercase letters, digits or underscores, got {shown(name)}")
    if not callable(adapter):
        raise InvalidArgument(f"a provider adapter is a function of one raw event, got {type(adapter).__name__}")
    if name in _ADAPTERS and not replace:
        raise InvalidArgument(f"provider {name!r} is registered already; pass replace=True to replace it")
    _ADAPTERS[name] = adapter


def registered_providers() -> list[str]:
    return sorted(_ADAPTERS)


def is_trusted(adapter: Adapter) -> bool:
    return adapter in _TRUSTED


def adapter_for(name: object) -> Adapter:
    adapter = _ADAPTERS.get(name) if isinstance(name, str) else None
    if adapter is None:
        raise InvalidArgument(
            f"provider must be None (canonical events) or a registered provider ({', '.join(sorted(_ADAPTERS))}), "
            f"got {shown(name)}; see engine.realtime.register_provider"
        )
    return adapter
