"""Hypothesis plugin hook (entry point group ``hypothesis``): makes
``st.from_type(Message)`` and ``st.from_type(Usage)`` draw valid values."""

from __future__ import annotations


def register() -> None:
    from hypothesis import strategies as st

    from engine.state.content import Message, Usage
    from engine.testing.strategies import messages, usages

    st.register_type_strategy(Message, messages())
    st.register_type_strategy(Usage, usages())
