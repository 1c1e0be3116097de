"""Hypothesis settings profiles.

``ci`` (the default, used by ``make test``): derandomised and bounded, so CI
is reproducible and fits its time limit. ``dev``: random, a few more
examples. ``fuzz`` (``make fuzz``): random, many more examples and longer
state-machine runs, failures saved to ``.hypothesis/`` and replayed first.
Choose with ``HYPOTHESIS_PROFILE=dev``. A shrunk failing example found this
way is kept as a regression test in ``tests/test_regressions.py``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=25,
    stateful_step_count=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", deadline=None, max_examples=60, stateful_step_count=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", deadline=None, max_examples=1000, stateful_step_count=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
