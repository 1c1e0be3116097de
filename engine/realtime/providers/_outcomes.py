"""What a provider adapter returns for a raw event it does not translate."""

from __future__ import annotations

import msgspec

__all__ = ["Ignored", "Rejected"]


class Rejected(msgspec.Struct, frozen=True):
    """The raw event is malformed or unsafe; it is not stored."""

    reason: str


class Ignored(msgspec.Struct, frozen=True):
    """The raw event is well formed but says nothing about the transcript."""

    reason: str
