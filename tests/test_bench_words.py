"""The words `make bench-peers` prints under its table: the engine leads a
peer on a measure only if it is better in every run (run i against run i,
made in the same round), by more than 1%; a peer without a feature is not
compared on it."""

from __future__ import annotations

import math

from benchmarks.peers import _Engine, _leads

KEYS = ("append_rate", "append_at_end", "load", "fork", "fork_bytes", "bytes_per_message", "bytes_per_message_in_calls")


def _run(**values: float) -> dict[str, float]:
    run = dict.fromkeys(KEYS, 1.0) | {"messages": 4000.0}
    run.update(values)
    return run


def _said(results: dict[str, list[dict[str, float]]]) -> dict[str, str]:
    return {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in _leads(results)}


def test_within_one_percent_is_level_not_a_lead() -> None:
    said = _said({_Engine.name: [_run(bytes_per_message=286.72)], "peer": [_run(bytes_per_message=286.74)]})
    assert said["bytes per message"] == (
        "the engine does NOT lead in every run: peer (286.7 B; the engine better in 0 of 1 runs) (the engine 286.7 B)"
    )


def test_a_lead_in_every_run_a_loss_and_a_higher_is_better_rate() -> None:
    engine = [_run(bytes_per_message=250.0, load=0.020, append_rate=4500.0)] * 3
    peer = [_run(bytes_per_message=287.0, load=0.014, append_rate=2800.0)] * 3
    said = _said({_Engine.name: engine, "peer": peer})
    assert said["bytes per message"] == "the engine leads every peer, in every run"
    assert said["cold load"] == (
        "the engine does NOT lead in every run: peer (14.0 ms; the engine better in 0 of 3 runs) (the engine 20.0 ms)"
    )
    assert said["appends per second"] == "the engine leads every peer, in every run"


def test_a_median_ahead_is_no_lead_when_a_run_is_behind() -> None:
    """The medians favour the engine (15 ms against 16 ms), but one run of
    three is the peer's: that is within the machine's noise, not a lead."""
    engine = [_run(load=0.015), _run(load=0.015), _run(load=0.020)]
    peer = [_run(load=0.016), _run(load=0.016), _run(load=0.012)]
    said = _said({_Engine.name: engine, "peer": peer})
    assert said["cold load"] == (
        "the engine does NOT lead in every run: peer (16.0 ms; the engine better in 2 of 3 runs) (the engine 15.0 ms)"
    )


def test_a_peer_without_a_call_for_several_messages_is_not_compared_on_it() -> None:
    said = _said(
        {_Engine.name: [_run(bytes_per_message_in_calls=245.0)], "peer": [_run(bytes_per_message_in_calls=math.nan)]}
    )
    assert said["bytes per message, 100 per call"] == "the engine leads every peer, in every run"


def test_a_peer_measured_with_fewer_messages_is_named_where_it_is_not_compared() -> None:
    said = _said(
        {
            _Engine.name: [_run(load=0.020)],
            "small peer": [_run(load=0.005) | {"messages": 1000.0}],
            "peer": [_run(load=0.030)],
        }
    )
    assert said["cold load"] == (
        "the engine leads every peer, in every run; not compared: small peer (measured at 1,000 messages)"
    )
    assert said["appends per second"] == (
        "the engine does NOT lead in every run: small peer (1.0 msg/s; the engine better in 0 of 1 runs), "
        "peer (1.0 msg/s; the engine better in 0 of 1 runs) (the engine 1.0 msg/s)"
    )
