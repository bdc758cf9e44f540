"""The hostile-input sweep (tests/hostile_sweep.py) as a test: every 8th case by default (about 35 cases,
under a minute), all ~250 with `python -m pytest -m sweep_full tests/test_hostile.py`."""
import pytest

import hostile_sweep


def _assert_clean(verdicts):
    bad = [f"{v.case}: {'; '.join(v.problems)} [exit {v.code}] {v.tail}" for v in verdicts if v.problems]
    assert not bad, "\n".join(bad)


def test_hostile_inputs_short_sweep():
    verdicts = hostile_sweep.sweep(short=True)
    assert len(verdicts) >= 30
    _assert_clean(verdicts)


@pytest.mark.sweep_full
def test_hostile_inputs_full_sweep(request):
    if "sweep_full" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the full sweep (~250 cases, about 5 minutes) runs with -m sweep_full")
    verdicts = hostile_sweep.sweep(short=False)
    assert len(verdicts) >= 200
    _assert_clean(verdicts)
