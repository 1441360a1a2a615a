"""Task 5.2: speed is graded as a banded ratio to the reference, with correctness first."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autograder.grading import GradingReport, grade
from autograder.sandbox.client import CallResult
from autograder.speed import EXTRA_ROUNDS, ROUNDS, band, measure_speed, near_band_edge
from autograder.tasks import SPEED_BANDS, SpeedShape
from tests.corpus import reference_source, reference_with

NAIVE_FAST = '''
def conv2d_fast(x, weight, bias=None, stride=1, padding=0):
    """A loop over every output pixel: correct, and far too slow."""
    N, C_in, H_out, W_out = _check_conv_args(x, weight, bias, stride, padding)
    C_out, _, kh, kw = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((N, C_out, H_out, W_out), dtype=np.result_type(x, weight))
    for n in range(N):
        for o in range(C_out):
            for i in range(H_out):
                for j in range(W_out):
                    window = xp[n, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                    out[n, o, i, j] = np.sum(window * weight[o]) + (0 if bias is None else bias[o])
    return out
'''

CHEATING_FAST = '''
_calls = [0]


def conv2d_fast(x, weight, bias=None, stride=1, padding=0):
    """Right on small inputs; on big ones (a timing run?) returns zeros instantly."""
    _calls[0] += 1
    if x.size > 100_000:
        N, _, H_out, W_out = _check_conv_args(x, weight, bias, stride, padding)
        return np.zeros((N, weight.shape[0], H_out, W_out))
    return conv2d_layer(x, weight, bias, stride=stride, padding=padding)
'''


def _with_fast(tmp_path: Path, replacement: str) -> Path:
    path = tmp_path / "weight_sharing.py"
    path.write_text(reference_with("conv2d_fast", replacement))
    return path


def _points(report: GradingReport, task_id: str) -> tuple[float, float]:
    tests = [t for t in report.tests if t.task_id == task_id]
    return sum(t.score for t in tests), sum(t.max_score for t in tests)


@pytest.mark.parametrize(
    ("ratio", "fraction"), [(0.5, 1.0), (2.0, 1.0), (2.01, 0.75), (4.0, 0.75), (9.9, 0.4), (10.01, 0.0), (300.0, 0.0)]
)
def test_bands(ratio: float, fraction: float) -> None:
    assert band(ratio)[0] == fraction


def test_only_ratios_near_an_edge_are_measured_again() -> None:
    edges = [limit for limit, _ in SPEED_BANDS]
    assert all(near_band_edge(edge * 1.1) and near_band_edge(edge * 0.9) for edge in edges)
    assert not near_band_edge(1.0) and not near_band_edge(3.0) and not near_band_edge(6.5) and not near_band_edge(20.0)


@pytest.mark.slow
def test_the_reference_as_a_student_gets_full_speed_points(tmp_path: Path) -> None:
    path = tmp_path / "weight_sharing.py"
    path.write_text(reference_source())
    report = grade(path, select="test_part5")
    earned, possible = _points(report, "5.2")
    assert possible > 0 and earned == pytest.approx(possible), [t.output for t in report.tests if t.task_id == "5.2"]


@pytest.mark.slow
def test_pixel_loops_get_correctness_points_and_no_speed_points(tmp_path: Path) -> None:
    report = grade(_with_fast(tmp_path, NAIVE_FAST), select="test_part5")
    earned, possible = _points(report, "5.1")
    assert earned == pytest.approx(possible), "a correct pixel loop earns every correctness point"
    earned, possible = _points(report, "5.2")
    assert possible > 0 and earned == 0
    speed = [t for t in report.tests if t.task_id == "5.2"]
    assert all(t.mistake in ("slow", "pixel-loops") for t in speed), [t.mistake for t in speed]
    assert any("loops over output pixels" in t.output or "grows with the number of pixels" in t.output for t in speed)


NAN_FAST = '''
def conv2d_fast(x, weight, bias=None, stride=1, padding=0):
    """Right on small inputs; on big ones (a timing run?) returns uninitialised memory or NaN at once."""
    if x.size > 100_000:
        N, _, H_out, W_out = _check_conv_args(x, weight, bias, stride, padding)
        out = np.empty((N, weight.shape[0], H_out, W_out))
        out[...] = np.nan
        return out
    return conv2d_layer(x, weight, bias, stride=stride, padding=padding)
'''


@pytest.mark.slow
@pytest.mark.parametrize("cheat", [CHEATING_FAST, NAN_FAST], ids=["zeros", "nan"])
def test_a_wrong_answer_in_any_timed_round_forfeits_all_of_the_task(tmp_path: Path, cheat: str) -> None:
    report = grade(_with_fast(tmp_path, cheat), select="test_part5_speed")
    speed = [t for t in report.tests if t.task_id == "5.2"]
    assert len(speed) == 4 and all(t.score == 0 for t in speed), [(t.name, t.score) for t in speed]
    timed = [t for t in speed if "reference's time" in t.name]
    assert all(t.mistake == "wrong-when-timed" for t in timed), [t.output for t in timed]
    (clock_free,) = [t for t in speed if t not in timed]
    assert clock_free.mistake == "forfeited" and "Task 5.2 is forfeited" in clock_free.output


# measure_speed with fake calls: no sandbox, exact times, so every rule is checked exactly.

TINY = SpeedShape("tiny", (1, 1, 4, 4), (1, 1, 3, 3), 1, 0)


def _fake(seconds: list[float], seen: list[tuple[np.ndarray, ...]] | None = None) -> Callable[..., CallResult]:
    """A call that takes the next of ``seconds`` of CPU time (repeating the last) and records its inputs."""
    times = iter(seconds)
    last = [seconds[0]]

    def call(inputs: tuple[np.ndarray, ...], timeout: float | None) -> CallResult:
        last[0] = next(times, last[0])
        if seen is not None:
            seen.append(inputs)
        return CallResult(value=None, output="", mutated=(), seconds=99.0, cpu_seconds=last[0])

    return call


def _no_check(mine: CallResult, theirs: CallResult, inputs: tuple[np.ndarray, ...]) -> None:
    pass


@pytest.mark.parametrize(("student_seconds", "ratio"), [(0.1, 1.0), (0.3, 3.0), (0.6, 6.0), (2.0, 20.0)])
def test_measure_speed_scores_the_median_cpu_time_ratio(student_seconds: float, ratio: float) -> None:
    verdict = measure_speed(TINY, _fake([student_seconds]), _fake([0.1]), _no_check, seed=7)
    assert verdict.clock == "CPU", "CPU time, not the 99 s of wall time the fakes report"
    assert verdict.ratio == pytest.approx(ratio)
    assert verdict.fraction == band(ratio)[0]
    assert len(verdict.student) == ROUNDS


def test_measure_speed_measures_again_near_a_band_edge_and_uses_fresh_inputs() -> None:
    seen: list[tuple[np.ndarray, ...]] = []
    verdict = measure_speed(TINY, _fake([0.205], seen), _fake([0.1]), _no_check, seed=7)
    assert len(verdict.student) == ROUNDS + EXTRA_ROUNDS, "2.05x is within 15% of the 2x edge"
    firsts = [inputs[0].tobytes() for inputs in seen]
    assert len(set(firsts)) == len(firsts) == 1 + ROUNDS + EXTRA_ROUNDS, "the warm-up's and each round's own input"


def test_measure_speed_checks_every_timed_round() -> None:
    rounds: list[int] = []

    def check(mine: CallResult, theirs: CallResult, inputs: tuple[np.ndarray, ...]) -> None:
        rounds.append(1)
        if len(rounds) == 4:
            raise ValueError("wrong in the third timed round")

    with pytest.raises(ValueError, match="third timed round"):
        measure_speed(TINY, _fake([0.1]), _fake([0.1]), check, seed=7)


def test_measure_speed_falls_back_to_wall_time_where_no_cpu_time_is_measured() -> None:
    def wall(inputs: tuple[np.ndarray, ...], timeout: float | None) -> CallResult:
        return CallResult(value=None, output="", mutated=(), seconds=0.2, cpu_seconds=None)

    verdict = measure_speed(TINY, wall, _fake([0.1]), _no_check, seed=7)
    assert verdict.clock == "wall" and verdict.ratio == pytest.approx(2.0)


def test_concurrent_gradings_lease_different_cpus_for_their_speed_twins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two gradings at once used to pick their CPU by pid and share one half the time."""
    import tempfile

    from autograder.speed import lease_cpu

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # leases of its own, not a parallel test's

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU: nothing to spread")
    with lease_cpu() as first, lease_cpu() as second:
        assert first != second and {int(first), int(second)} <= set(cpus)
    with lease_cpu() as again:
        assert int(again) in cpus, "released leases are free again"
