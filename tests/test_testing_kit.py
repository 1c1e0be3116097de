"""The verification kit as a user meets it (found by a newcomer pass): a
disagreement says where and what, under ``python -O`` too, and the model's
compaction takes the store's figures as the store defaults them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine import Message, Transcripts
from engine.testing import ReferenceModel, check_against_model


def _side_by_side() -> tuple[Transcripts, ReferenceModel, str]:
    store, model = Transcripts.open(), ReferenceModel()
    sid = store.create(title="t")
    model.create(sid, "t")
    messages = [Message.user("a"), Message.assistant("b"), Message.user("c")]
    store.append(sid, *messages)
    model.append(sid, messages)
    return store, model, sid


def test_a_disagreement_names_the_session_version_field_and_both_values() -> None:
    store, model, sid = _side_by_side()
    store.set_title(sid, "engine's")
    model.set_title(sid, "model's")
    with pytest.raises(AssertionError) as caught:
        check_against_model(store, model)
    assert str(caught.value) == (
        f"session {sid!r} at version 3: title differs from the reference model: "
        'the engine has "engine\'s", the model "model\'s"'
    )
    store, model, sid = _side_by_side()
    store.append(sid, Message.user("d"))
    model.append(sid, [Message.user("e")])
    with pytest.raises(AssertionError, match=r"version 3: messages differs .*: message 3 is b'.*d.*' in the engine"):
        check_against_model(store, model)


def test_a_disagreement_is_reported_under_python_o(tmp_path: Path) -> None:
    # The checks were bare asserts: python -O removed them, and a wrong
    # title passed.
    script = tmp_path / "check.py"
    script.write_text(
        textwrap.dedent(
            """
            from engine import Transcripts
            from engine.testing import ReferenceModel, check_against_model
            store, model = Transcripts.open(), ReferenceModel()
            sid = store.create(title="t")
            model.create(sid, "wrong")
            try:
                check_against_model(store, model)
            except AssertionError as error:
                print("caught:", error)
            """
        )
    )
    project = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run(
        [sys.executable, "-O", str(script)], capture_output=True, text=True, env={"PYTHONPATH": project}, check=True
    )
    assert "caught: session" in done.stdout and "title differs" in done.stdout


def test_the_models_compaction_takes_the_figures_given_and_the_stores_defaults() -> None:
    store, model, sid = _side_by_side()
    summary = [Message.system("summary")]
    store.compact(sid, 0, 2, summary, tokens_before=10, tokens_after=2)
    model.compact(sid, 0, 2, summary, {"tokens_before": 10, "tokens_after": 2})  # trigger, model, latency: defaults
    check_against_model(store, model)
    with pytest.raises(ValueError, match="not a compaction figure: tokens"):
        model.compact(sid, 0, 1, [Message.system("again")], {"tokens": 3})
