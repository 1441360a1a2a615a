"""Part 5: conv2d_fast's speed (Task 5.2) and its GPU path (Task 5.3).

Speed is never measured on its own: each timed call gets fresh inputs and its output is checked,
and a small correctness gate runs first, so there are no speed points without correct values.
See :mod:`autograder.speed` for how the ratio to the reference is measured and banded.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest

from autograder.checks import CheckFailed, SubmissionProxy, check_array, plain
from autograder.grading import gpu_available
from autograder.hidden_tests.strategies import LayerCase
from autograder.hidden_tests.test_part1_convolution import check_layer
from autograder.sandbox.client import CallResult, CallTimeout, OnDevice, Sandbox, SandboxError, StudentRaised
from autograder.speed import measure_speed
from autograder.tasks import SPEED_SHAPES, SpeedShape

graded = pytest.mark.graded
ARGNAMES = ("x", "weight", "bias", "stride", "padding")
#: Line counts on an 8x8 and a 32x32 input (16 times the pixels): a vectorised conv2d_fast runs
#: about the same lines for both; one that loops over pixels runs many more for the larger one.
SMALL, LARGE = (2, 3, 8, 8), (2, 3, 32, 32)


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


def _line_counts(sub: SubmissionProxy, seed: int, timeout: float | None = None) -> tuple[int | None, int | None]:
    """Lines of the submission conv2d_fast executes on SMALL and on LARGE (None where not counted)."""
    counts = []
    for shape in (SMALL, LARGE):
        x = np.random.default_rng(seed).standard_normal(shape)
        result = sub.sandbox.call(
            "conv2d_fast", (x, np.ones((4, 3, 3, 3))), argnames=ARGNAMES, count_lines=True, timeout=timeout
        )
        counts.append(result.lines)
    return counts[0], counts[1]


def _grows_with_pixels(small: int, large: int) -> bool:
    """The rule: 16 times the pixels may not run more than twice the lines (plus a little slack)."""
    return large > 2 * small + 20


def _loops_over_pixels(sub: SubmissionProxy) -> tuple[int, int] | None:
    """Line counts on SMALL and LARGE when they show a loop over pixels, else None."""
    try:
        small, large = _line_counts(sub, seed=1, timeout=30)
    except SandboxError:
        return None
    if small is None or large is None:
        return None
    return (small, large) if _grows_with_pixels(small, large) else None


def _pixel_loop_hint(sub: SubmissionProxy) -> str | None:
    counts = _loops_over_pixels(sub)
    if counts is None:
        return None
    return (
        f"your conv2d_fast loops over output pixels: it ran {counts[0]} lines of your code for an 8x8 input and "
        f"{counts[1]} for a 32x32 one. Build the matrix of receptive fields (im2col) with one copy per kernel offset, "
        "then use one matrix product."
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
            )
        except CallTimeout:
            raise CheckFailed(
                f"On {shape.name} {shape.x}, your conv2d_fast took more than {timeout or 0:.1f} s, over "
                f"{(timeout or 0) / max(reference_seconds[0], 1e-9):.0f}x the reference's time: no speed points.",
                hint=_pixel_loop_hint(sub),
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
            "conv2d_fast", (x, w), {"bias": b, "stride": shape.stride, "padding": shape.padding}, argnames=ARGNAMES
        )
        reference_seconds[0] = result.seconds
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
        error = np.abs(got - expected).max(axis=(0, 2, 3))
        if np.any(error > 1e-9 * bound):
            raise CheckFailed(
                f"On {shape.name} {shape.x}, a timed call of conv2d_fast returned wrong values (largest error "
                f"{error.max():.3g}): every timed call is checked, so there are no speed points.",
                mistake="wrong-when-timed",
            )

    seed = zlib.crc32(shape.name.encode())
    verdict = measure_speed(shape, student, reference, check, seed=seed)
    text = verdict.describe()
    record_property("feedback", text)
    if verdict.fraction < 1.0:
        hint = _pixel_loop_hint(sub) if verdict.fraction < 0.5 else None
        raise CheckFailed(text, fraction=verdict.fraction, hint=hint, mistake="pixel-loops" if hint else "slow")


@graded("5.2", weight=1)
def test_python_work_does_not_grow_with_image_size(sub: SubmissionProxy, ref: ModuleType) -> None:
    """runs no Python loop over pixels (lines executed do not grow with the image: a clock-free check)"""
    weight = np.ones((4, 3, 3, 3))
    for shape in (SMALL, LARGE):
        x = np.random.default_rng(2).standard_normal(shape)
        check_array(sub.conv2d_fast(x, weight), ref.conv2d_layer(x, weight), scale=ref.conv2d_layer(np.abs(x), weight))
    counts = [lines or 0 for lines in _line_counts(sub, seed=2)]
    if _grows_with_pixels(*counts):
        raise CheckFailed(
            f"conv2d_fast ran {counts[0]} lines of your code for an 8x8 input and {counts[1]} for a 32x32 input: "
            "its Python work grows with the number of pixels.",
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
        )

    def check(mine: CallResult, theirs: CallResult, inputs: tuple[np.ndarray, ...]) -> None:
        if mine.device != "cupy" or not isinstance(mine.value, np.ndarray) or mine.value.shape != theirs.value.shape:
            raise CheckFailed(
                "on the GPU, conv2d_fast must return a CuPy array of the right shape: no GPU speed points"
            )
        if not np.allclose(mine.value, theirs.value, rtol=1e-6, atol=1e-6 * np.abs(theirs.value).max()):
            raise CheckFailed("a timed GPU call of conv2d_fast returned wrong values: no GPU speed points")

    try:
        verdict = measure_speed(
            shape, lambda i, t: call(sub.sandbox, i, t), lambda i, t: call(reference_worker, i, None), check, seed=531
        )
    except SandboxError as problem:
        raise CheckFailed(f"conv2d_fast on the GPU: {problem}") from None
    record_property("feedback", "GPU: " + verdict.describe())
    if verdict.fraction < 1.0:
        raise CheckFailed("GPU: " + verdict.describe(), fraction=verdict.fraction, mistake="slow")
