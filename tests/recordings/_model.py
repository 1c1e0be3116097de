"""What a recording fixture is: the server events of one call, and the
transcript its script meant to produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Expected:
    """One expected transcript message. ``item_id``, when given, is the
    provider item id the message must carry."""

    role: str
    text: str
    incomplete: bool = False
    item_id: str | None = None


@dataclass(frozen=True)
class Recording:
    """The server events of one call and the transcript they mean.

    ``expected`` is written from the generator's script (what the call was
    meant to say), never from the engine's output; ``out_of_band`` lists the
    messages of responses made outside the conversation."""

    name: str
    events: list[dict[str, Any]]
    expected: list[Expected]
    out_of_band: list[Expected] = field(default_factory=list)
    notes: str = ""
