"""The words `make bench-peers` prints under its table: a lead is a lead
only by more than 1%, and a peer without a feature is not compared on it."""

from __future__ import annotations

import math

from benchmarks.peers import _Engine, _leads

KEYS = ("append_rate", "append_at_end", "load", "fork", "fork_bytes", "bytes_per_message", "bytes_per_message_in_calls")


def _row(**values: float) -> dict[str, float]:
    row = dict.fromkeys(KEYS, 1.0) | {"messages": 4000.0}
    row.update(values)
    return row


def _said(engine: dict[str, float], peer: dict[str, float]) -> dict[str, str]:
    lines = _leads({_Engine.name: engine, "peer": peer}, engine)
    return {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines}


def test_within_one_percent_is_level_not_a_lead() -> None:
    said = _said(_row(bytes_per_message=286.72), _row(bytes_per_message=286.74))
    assert said["bytes per message"] == (
        "the engine does NOT lead: level (within 1%) with peer (286.7 B) (the engine 286.7 B)"
    )


def test_a_lead_a_loss_and_a_higher_is_better_rate() -> None:
    said = _said(
        _row(bytes_per_message=250.0, load=0.020, append_rate=4500.0),
        _row(bytes_per_message=287.0, load=0.014, append_rate=2800.0),
    )
    assert said["bytes per message"] == "the engine leads every peer"
    assert said["cold load"] == "the engine does NOT lead: better here are peer (14.0 ms) (the engine 20.0 ms)"
    assert said["appends per second"] == "the engine leads every peer"


def test_a_peer_without_a_call_for_several_messages_is_not_compared_on_it() -> None:
    said = _said(_row(bytes_per_message_in_calls=245.0), _row(bytes_per_message_in_calls=math.nan))
    assert said["bytes per message, 100 per call"] == "the engine leads every peer"


def test_a_peer_measured_with_fewer_messages_is_named_where_it_is_not_compared() -> None:
    engine = _row(load=0.020)
    small = _row(load=0.005) | {"messages": 1000.0}
    lines = _leads({_Engine.name: engine, "small peer": small, "peer": _row(load=0.030)}, engine)
    said = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines}
    assert said["cold load"] == "the engine leads every peer; not compared: small peer (measured at 1,000 messages)"
    assert (
        said["appends per second"]
        == "the engine does NOT lead: level (within 1%) with small peer (1.0 msg/s), peer (1.0 msg/s) "
        "(the engine 1.0 msg/s)"
    )
