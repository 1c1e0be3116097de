"""Verify your own agent code against the engine: a reference model of the
transcript semantics and Hypothesis strategies.

Install with ``pip install 'transcript-engine[testing]'`` (it needs
Hypothesis). With the extra installed, ``st.from_type(Message)`` (and
``Usage``) draw valid values: the strategies are registered with Hypothesis
through its plugin entry point.
"""

from __future__ import annotations

try:
    import hypothesis  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("engine.testing needs Hypothesis: pip install 'transcript-engine[testing]'") from exc

from engine.testing import strategies, traces
from engine.testing.model import ModelSession, ModelState, ReferenceModel, model_revision, tool_pairing_ok
from engine.testing.runner import check_against_model, check_state, run_commands

__all__ = [
    "ModelSession",
    "ModelState",
    "ReferenceModel",
    "check_against_model",
    "check_state",
    "model_revision",
    "run_commands",
    "strategies",
    "tool_pairing_ok",
    "traces",
]
