"""Part 5: conv2d_fast's speed (Task 5.2) and its GPU path (Task 5.3).

Speed is never measured on its own: each timed call gets fresh inputs and its output is checked,
and a small correctness gate runs first, so there are no speed points without correct values.
See :mod:`autograder.speed` for how the ratio to the reference is measured and banded.
"""

from __future__ import annotations

import secrets
import statistics
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from autograder.checks import CheckFailed, SubmissionProxy, check_array, plain
from autograder.grading import gpu_available
from autograder.hidden_tests.strategies import LayerCase
from autograder.hidden_tests.test_part1_convolution import check_layer
from autograder.sandbox.client import CallResult, CallTimeout, OnDevice, Sandbox, SandboxError, StudentRaised
from autograder.speed import call_time, measure_speed
from autograder.tasks import SPEED_SHAPES, SpeedShape

graded = pytest.mark.graded
ARGNAMES = ("x", "weight", "bias", "stride", "padding")
#: Timed by the grader on an 8x8 and a 64x64 input (64 times the pixels): a vectorised
#: conv2d_fast's time grows about as the reference's does; one that loops over pixels grows far more.
SMALL, LARGE = (2, 3, 8, 8), (2, 3, 64, 64)
#: The mistake id of a timed call that returned a wrong value: it forfeits all of Task 5.2.
WRONG_WHEN_TIMED = "wrong-when-timed"


def _correctness_gate(sub: SubmissionProxy, ref: ModuleType) -> None:
    rng = np.random.default_rng(500)
    for stride, padding in ((1, 0), (2, 1), (1, 2)):
        case = LayerCase(
            rng.standard_normal((2, 3, 9, 8)),
            rng.standard_normal((4, 3, 3, 2)),
            rng.standard_normal(4),
            stride,
            padding,
        )
        try:
            check_layer(sub, ref, case, function="conv2d_fast")
        except CheckFailed as failure:
            raise CheckFailed(
                "Speed is graded only once conv2d_fast computes the right values, and it does not yet:\n"
                + failure.message,
                hint=failure.hint,
                mistake=failure.mistake,
            ) from None


def _timed_call(box: Sandbox, x: np.ndarray, weight: np.ndarray, timeout: float | None = None) -> CallResult:
    return box.call("conv2d_fast", (x, weight), argnames=ARGNAMES, timeout=timeout, exclusive=True)


def _growth(box: Sandbox, seed: int, timeout: float | None = None) -> tuple[float, float]:
    """Median time of conv2d_fast on SMALL and on LARGE, measured by the grader (3 rounds each)."""
    weight = np.ones((4, 3, 3, 3))
    times = []
    for shape in (SMALL, LARGE):
        x = np.random.default_rng(seed).standard_normal(shape)
        times.append(statistics.median(call_time(_timed_call(box, x, weight, timeout)) for _ in range(3)))
    return times[0], times[1]


def _grows_with_pixels(student: tuple[float, float], reference: tuple[float, float]) -> bool:
    """The rule: the student's time grows from SMALL to LARGE (64 times the pixels) more than four
    times as steeply as the reference's, and the large call is at least three times the reference's.

    A vectorised conv2d_fast grows about as the reference does (its cost is array work); a loop over
    output pixels runs 64 times the Python iterations, and its time grows with them.
    """
    (small, large), (ref_small, ref_large) = student, reference
    growth, ref_growth = large / max(small, 1e-6), ref_large / max(ref_small, 1e-6)
    return growth > 4 * ref_growth and large > 3 * ref_large


def _loops_over_pixels(sub: SubmissionProxy, reference_worker: Sandbox) -> tuple[float, float] | None:
    """The student's times on SMALL and LARGE when they show a loop over pixels, else None."""
    try:
        mine, theirs = _growth(sub.sandbox, seed=1, timeout=30), _growth(reference_worker, seed=1)
    except SandboxError:
        return None
    return mine if _grows_with_pixels(mine, theirs) else None


def _pixel_loop_hint(sub: SubmissionProxy, reference_worker: Sandbox) -> str | None:
    times = _loops_over_pixels(sub, reference_worker)
    if times is None:
        return None
    return (
        f"your conv2d_fast loops over output pixels: it took {1000 * times[0]:.1f} ms for an 8x8 input and "
        f"{1000 * times[1]:.1f} ms for a 64x64 one, far steeper than the reference. Build the matrix of receptive "
        "fields (im2col) with one copy per kernel offset, then use one matrix product."
    )


@graded("5.2", weight=1)
@pytest.mark.parametrize("shape", SPEED_SHAPES, ids=[shape.name for shape in SPEED_SHAPES])
def test_speed(
    sub: SubmissionProxy,
    ref: ModuleType,
    reference_worker: Sandbox,
    shape: SpeedShape,
    record_property: Callable[[str, object], None],
) -> None:
    """is within 2x of the reference's time (partial points down to 10x)"""
    _correctness_gate(sub, ref)

    def student(inputs: tuple[np.ndarray, ...], timeout: float | None) -> CallResult:
        x, w, b = inputs
        try:
            return sub.sandbox.call(
                "conv2d_fast",
                (x, w),
                {"bias": b, "stride": shape.stride, "padding": shape.padding},
                argnames=ARGNAMES,
                timeout=timeout,
                exclusive=True,
            )
        except CallTimeout as late:
            if late.waited:
                raise CheckFailed(f"On {shape.name} {shape.x}: {late}: no speed points.", mistake="waited") from None
            raise CheckFailed(
                f"On {shape.name} {shape.x}, your conv2d_fast took more than {timeout or 0:.1f} s, over "
                f"{(timeout or 0) / max(reference_seconds[0], 1e-9):.0f}x the reference's time: no speed points.",
                hint=_pixel_loop_hint(sub, reference_worker),
                mistake="slow",
            ) from None
        except StudentRaised as raised:
            raise CheckFailed(
                f"On {shape.name} {shape.x}, your conv2d_fast raised {raised.type_name}: {raised.message}"
            ) from None
        except SandboxError as problem:
            raise CheckFailed(f"On {shape.name} {shape.x}: {problem}") from None

    reference_seconds = [1.0]

    def reference(inputs: tuple[np.ndarray, ...], timeout: float | None) -> CallResult:
        x, w, b = inputs
        result = reference_worker.call(
            "conv2d_fast",
            (x, w),
            {"bias": b, "stride": shape.stride, "padding": shape.padding},
            argnames=ARGNAMES,
            exclusive=True,
        )
        reference_seconds[0] = call_time(result)
        return result

    def check(mine: CallResult, theirs: CallResult, inputs: tuple[np.ndarray, ...]) -> None:
        x, w, b = inputs
        got, expected = mine.value, theirs.value
        if not isinstance(got, np.ndarray) or got.shape != expected.shape or got.dtype.kind != "f":
            raise CheckFailed(
                f"On {shape.name} {shape.x}, conv2d_fast returned {type(got).__name__} "
                f"{getattr(got, 'shape', '')}; expected an array of shape {expected.shape}: no speed points."
            )
        # A cheap upper bound on the magnitude of the terms summed: max|x| * sum|w[o]| + |b[o]|.
        bound = np.abs(x).max() * np.abs(w).sum(axis=(1, 2, 3)) + np.abs(b)
        with np.errstate(invalid="ignore", over="ignore"):
            error = np.abs(got - expected).max(axis=(0, 2, 3))
        # NaN and inf are wrong values: comparisons with NaN are false, so test for "not within".
        if not np.all(np.isfinite(got)) or not np.all(error <= 1e-9 * bound):
            raise CheckFailed(
                f"On {shape.name} {shape.x}, a timed call of conv2d_fast returned wrong values (largest error "
                f"{np.nanmax(np.where(np.isfinite(error), error, np.inf)):.3g}): every timed call is checked, and "
                "a wrong value in any of them forfeits all of Task 5.2.",
                mistake=WRONG_WHEN_TIMED,
            )

    # A secret seed for every grading: the worker never sees it, so no answer can be precomputed.
    verdict = measure_speed(shape, student, reference, check, seed=secrets.randbits(31))
    text = verdict.describe()
    record_property("feedback", text)
    if verdict.fraction < 1.0:
        hint = _pixel_loop_hint(sub, reference_worker) if verdict.fraction < 0.5 else None
        raise CheckFailed(text, fraction=verdict.fraction, hint=hint, mistake="pixel-loops" if hint else "slow")


@graded("5.2", weight=1)
def test_python_work_does_not_grow_with_image_size(
    sub: SubmissionProxy, ref: ModuleType, reference_worker: Sandbox
) -> None:
    """runs no Python loop over pixels (its time grows with the image no faster than the reference's)"""
    weight = np.ones((4, 3, 3, 3))
    for shape in (SMALL, LARGE):
        x = np.random.default_rng(2).standard_normal(shape)
        check_array(sub.conv2d_fast(x, weight), ref.conv2d_layer(x, weight), scale=ref.conv2d_layer(np.abs(x), weight))
    try:
        mine, theirs = _growth(sub.sandbox, seed=2, timeout=30), _growth(reference_worker, seed=2)
    except CallTimeout as late:
        raise CheckFailed(f"conv2d_fast on a 64x64 input: {late}", mistake="slow") from None
    if _grows_with_pixels(mine, theirs):
        raise CheckFailed(
            f"conv2d_fast took {1000 * mine[0]:.1f} ms for an 8x8 input and {1000 * mine[1]:.1f} ms for a 64x64 input "
            f"(the reference: {1000 * theirs[0]:.1f} and {1000 * theirs[1]:.1f} ms): its work grows with the number "
            "of pixels far faster than the reference's.",
            hint="vectorise: one copy per kernel offset to build the receptive fields, then one matrix product",
            mistake="pixel-loops",
        )


# ---------------------------------------------------------------------------------------------
# Task 5.3: the GPU path (skipped, with 0 possible points, where there is no CUDA device)
# ---------------------------------------------------------------------------------------------


def _require_gpu(gpu_mode: str) -> None:
    if gpu_mode == "off":
        pytest.skip("GPU tests turned off (--gpu off): 0 possible points")
    if not gpu_available():
        pytest.skip("no CUDA device with CuPy in this grading environment: GPU tests skipped, 0 possible points")


@graded("5.3", weight=1)
def test_gpu_returns_a_cupy_array_with_the_right_values(sub: SubmissionProxy, ref: ModuleType, gpu_mode: str) -> None:
    """on CuPy input, computes on the GPU and returns a CuPy array with the right values"""
    _require_gpu(gpu_mode)
    rng = np.random.default_rng(530)
    x, w, b = rng.standard_normal((2, 3, 16, 16)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    outcome = sub.conv2d_fast(OnDevice(x), OnDevice(w), bias=OnDevice(b), stride=2, padding=1)
    if outcome.result.device != "cupy":
        raise CheckFailed(
            "conv2d_fast received CuPy arrays but returned a NumPy array: compute with the array's own module "
            "(cupy.get_array_module(x), or the _array_module helper) so that the result stays on the GPU.",
            mistake="gpu-returns-numpy",
        )
    expected = ref.conv2d_layer(x, w, b, stride=2, padding=1)
    check_array(outcome, expected, scale=ref.conv2d_layer(np.abs(x), np.abs(w), np.abs(b), stride=2, padding=1))


@graded("5.3", weight=1)
def test_gpu_speed(
    sub: SubmissionProxy, reference_worker: Sandbox, gpu_mode: str, record_property: Callable[[str, object], None]
) -> None:
    """on the GPU, is within 2x of the CuPy reference's time"""
    _require_gpu(gpu_mode)
    shape = SPEED_SHAPES[1]

    def call(box: Sandbox, inputs: tuple[np.ndarray, ...], timeout: float | None) -> CallResult:
        x, w, b = (OnDevice(plain(a)) for a in inputs)
        return box.call(
            "conv2d_fast",
            (x, w),
            {"bias": b, "stride": shape.stride, "padding": shape.padding},
            argnames=ARGNAMES,
            timeout=timeout,
            exclusive=True,
        )

    def check(mine: CallResult, theirs: CallResult, inputs: tuple[np.ndarray, ...]) -> None:
        if mine.device != "cupy" or not isinstance(mine.value, np.ndarray) or mine.value.shape != theirs.value.shape:
            raise CheckFailed(
                "on the GPU, conv2d_fast must return a CuPy array of the right shape: no GPU speed points"
            )
        if not np.all(np.isfinite(mine.value)) or not np.allclose(
            mine.value, theirs.value, rtol=1e-6, atol=1e-6 * np.abs(theirs.value).max()
        ):
            raise CheckFailed("a timed GPU call of conv2d_fast returned wrong values: no GPU speed points")

    try:
        verdict = measure_speed(
            shape,
            lambda i, t: call(sub.sandbox, i, t),
            lambda i, t: call(reference_worker, i, None),
            check,
            seed=secrets.randbits(31),
        )
    except SandboxError as problem:
        raise CheckFailed(f"conv2d_fast on the GPU: {problem}") from None
    record_property("feedback", "GPU: " + verdict.describe())
    if verdict.fraction < 1.0:
        raise CheckFailed("GPU: " + verdict.describe(), fraction=verdict.fraction, mistake="slow")
