"""Part 4: shift2d (Task 4.1), circular_conv2d (4.2), equivariance_error (4.3), is_shift_equivariant (4.4).

The layers handed to equivariance_error and is_shift_equivariant are :class:`Layer` descriptions: the
worker builds them from trusted code, and the same object computes here, so the expected answers
come from the reference applied to the very layer the student's code received.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks import (
    FLOAT32_RTOL,
    FLOAT64_RTOL,
    CheckFailed,
    Hint,
    Outcome,
    StudentFunction,
    SubmissionProxy,
    check_accepts,
    check_array,
    check_exact,
    check_no_mutation,
    describe_call,
    expect_error,
    plain,
)
from autograder.feedback import describe_value, matching_hint
from autograder.hidden_tests.strategies import arrays, as_dtype, draw_array, dtypes, maybe_views
from autograder.sandbox.client import Layer, StudentRaised

graded = pytest.mark.graded

# ---------------------------------------------------------------------------------------------
# Part-specific strategies and layers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShiftCase:
    """Arguments of ``shift2d``."""

    x: np.ndarray
    dy: int
    dx: int
    circular: bool


@st.composite
def shift_cases(draw: st.DrawFn, *, max_side: int = 6) -> ShiftCase:
    """A 2-D to 4-D array and a shift of any size (|d| >= the side included), circular or not."""
    lead = draw(st.sampled_from([(), (), (2,), (1, 2), (2, 1)]))
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    x = draw_array(draw, (*lead, H, W))
    dy, dx = draw(st.integers(-H - 2, H + 2)), draw(st.integers(-W - 2, W + 2))
    circular = draw(st.booleans())
    return ShiftCase(x.astype(draw(dtypes())), dy, dx, circular)


@dataclass(frozen=True)
class CircularCase:
    """Arguments of ``circular_conv2d``."""

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None


@st.composite
def circular_cases(draw: st.DrawFn, *, max_side: int = 6) -> CircularCase:
    """A batch and odd-sized filters (1, 3 or 5 along each axis, possibly larger than the image)."""
    N, C_in, C_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kh, kw = draw(st.sampled_from([1, 3, 3, 5])), draw(st.sampled_from([1, 3, 3, 5]))
    with_bias = draw(st.booleans())
    x, weight = draw_array(draw, (N, C_in, H, W)), draw_array(draw, (C_out, C_in, kh, kw))
    bias = draw_array(draw, (C_out,)) if with_bias else None
    dtype = draw(dtypes())
    return CircularCase(x.astype(dtype), weight.astype(dtype), as_dtype(bias, dtype))


def conv_layer(weight: np.ndarray, bias: np.ndarray | None = None) -> dict[str, Any]:
    """A circular convolution layer's description."""
    return {"kind": "circular_conv", "weight": weight, "bias": bias}


def compose(*layers: dict[str, Any]) -> dict[str, Any]:
    """The description of ``layers`` applied one after the other."""
    return {"kind": "compose", "layers": list(layers)}


#: What the strategies draw: shift-equivariant layers (convolutions, pointwise ops, compositions) and not
#: (position-dependent, untied, subsampling, zero padding). The reference decides which is which.
LAYER_KINDS = (
    "circular_conv",
    "relu",
    "square",
    "scale",
    "position_bias",
    "untied_1x1",
    "subsample_upsample",
    "zero_pad_conv",
    "conv_relu",
    "bias_square",
)


@st.composite
def layer_specs(draw: st.DrawFn, C: int, H: int, W: int) -> dict[str, Any]:
    """A size-preserving layer for an input ``(N, C, H, W)``: equivariant ones and not."""
    kind = draw(st.sampled_from(LAYER_KINDS))
    C_out = draw(st.integers(1, 2))
    if kind in ("circular_conv", "conv_relu"):
        k = draw(st.sampled_from([1, 3]))
        spec = conv_layer(draw_array(draw, (C_out, C, k, k)), draw(st.none() | arrays((C_out,))))
        return compose(spec, {"kind": "relu"}) if kind == "conv_relu" else spec
    if kind == "scale":
        return {"kind": "scale", "factor": float(draw(st.integers(-3, 3)))}
    if kind in ("position_bias", "bias_square"):
        spec = {"kind": "position_bias", "bias": draw_array(draw, (H, W))}
        return compose(spec, {"kind": "square"}) if kind == "bias_square" else spec
    if kind == "untied_1x1":
        return {"kind": "untied_1x1", "weight": draw_array(draw, (H, W, C_out, C))}
    if kind == "subsample_upsample":
        return {"kind": "subsample_upsample", "stride": 2}
    if kind == "zero_pad_conv":
        return {"kind": "zero_pad_conv", "weight": draw_array(draw, (C_out, C, 3, 3))}
    return {"kind": kind}


@dataclass(frozen=True)
class EquivarianceCase:
    """A layer, an input and a shift."""

    layer: Layer
    x: np.ndarray
    dy: int
    dx: int


@st.composite
def equivariance_cases(draw: st.DrawFn) -> EquivarianceCase:
    """A size-preserving layer, a small batch it accepts, and a shift of up to the image's size."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    H, W = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    layer = Layer(draw(layer_specs(C, H, W)))
    x = draw_array(draw, (N, C, H, W))
    dy, dx = draw(st.integers(-H, H)), draw(st.integers(-W, W))
    return EquivarianceCase(layer, x, dy, dx)


def rolled(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The circular shift (``np.roll``), an implementation independent of the reference."""
    return np.roll(x, (dy, dx), axis=(-2, -1))


# ---------------------------------------------------------------------------------------------
# Task 4.1: shift2d
# ---------------------------------------------------------------------------------------------


def shift_hints(ref: ModuleType, x: np.ndarray, dy: int, dx: int, circular: bool) -> list[Hint]:
    """Classic shift2d mistakes for this call."""
    H, W = x.shape[-2:]
    fill = (
        "you filled the vacated cells with zeros although circular=True: content that leaves one side comes back "
        "on the other (as np.roll)."
        if circular
        else "your shift wrapped around although circular=False: the vacated cells must be 0."
    )
    hints = [
        Hint(
            "shift-wrong-direction",
            "your result is shifted the opposite way: positive dy moves the content DOWN (row i goes to row i + dy), "
            "positive dx moves it RIGHT.",
            lambda: ref.shift2d(x, -dy, -dx, circular=circular),
        ),
        Hint(
            "shift-axes-swapped",
            "your result is shifted by dy along the columns and by dx along the rows: dy moves rows (axis -2), "
            "dx moves columns (axis -1).",
            lambda: ref.shift2d(x, dx, dy, circular=circular),
        ),
        Hint("shift-circular-ignored", fill, lambda: ref.shift2d(x, dy, dx, circular=not circular)),
    ]
    if not circular and (abs(dy) >= H or abs(dx) >= W):  # the more specific explanation comes first
        hints.insert(
            0,
            Hint(
                "shift-modulo",
                "a shift by at least the image's size moves everything out of the image (the result is all 0); "
                "you seem to have reduced the shift modulo the size.",
                lambda: ref.shift2d(x, int(np.fmod(dy, H)), int(np.fmod(dx, W)), circular=False),
            ),
        )
    return hints


def check_shift(
    sub: SubmissionProxy, ref: ModuleType, x: Any, dy: int, dx: int, circular: bool, *, dtype: bool = False
) -> Outcome:
    """Call ``shift2d`` and check its values (and, with ``dtype``, that it keeps x's dtype)."""
    outcome = sub.shift2d(x, dy, dx, circular=circular)
    x_ = plain(x)
    x64 = x_.astype(np.float64)
    check_array(outcome, ref.shift2d(x64, dy, dx, circular=circular), hints=shift_hints(ref, x64, dy, dx, circular))
    if dtype and outcome.value.dtype != x_.dtype:
        zeros = Hint("dtype-changed", "np.zeros(shape) is float64 whatever x is: use np.zeros_like(x).", lambda: None)
        raise outcome.fail(
            f"the result should keep x's dtype {x_.dtype}; got dtype {outcome.value.dtype}",
            hint=zeros if outcome.value.dtype == np.float64 else None,
        )
    return outcome


@graded("4.1", weight=1, public=True)
def test_shift2d_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """moves content down/right for positive shifts, up/left for negative ones"""
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    check_shift(sub, ref, x, 1, 0, False)  # [[0, 0, 0], [1, 2, 3]]
    check_shift(sub, ref, x, 0, -1, False)  # [[2, 3, 0], [5, 6, 0]]
    check_shift(sub, ref, x, 1, 1, False)  # [[0, 0, 0], [0, 1, 2]]
    check_shift(sub, ref, x, -1, 2, True)  # [[5, 6, 4], [2, 3, 1]]
    tall = np.arange(1.0, 13.0).reshape(4, 3)  # rows [1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]
    check_shift(sub, ref, tall, -1, 0, False)  # up one row: [[4, 5, 6], [7, 8, 9], [10, 11, 12], [0, 0, 0]]
    check_shift(sub, ref, tall, -2, 1, False)  # up two, right one: [[0, 7, 8], [0, 10, 11], [0, 0, 0], [0, 0, 0]]


@graded("4.1", weight=2)
@given(case=shift_cases(), data=st.data())
def test_shift2d_matches_reference(sub: SubmissionProxy, ref: ModuleType, case: ShiftCase, data: st.DataObject) -> None:
    """matches the definition for any shift, circular or not, on 2-D to 4-D arrays (float32, views)"""
    check_shift(sub, ref, data.draw(maybe_views(case.x)), case.dy, case.dx, case.circular)


@graded("4.1", weight=1)
def test_shift2d_large_shifts(sub: SubmissionProxy, ref: ModuleType) -> None:
    """handles shifts by the image's size or more (all zeros, or a full wrap-around)"""
    x = np.arange(1.0, 13.0).reshape(3, 4)
    for dy, dx in [(3, 0), (0, -4), (5, 1), (-2, 9), (-7, -6)]:
        check_shift(sub, ref, x, dy, dx, False)
        check_shift(sub, ref, x, dy, dx, True)


@graded("4.1", weight=0.5)
def test_shift2d_keeps_dtype(sub: SubmissionProxy, ref: ModuleType) -> None:
    """keeps the shape and dtype (float32 in, float32 out; 4-D input)"""
    x = np.random.default_rng(41).standard_normal((2, 3, 5, 4)).astype(np.float32)
    check_shift(sub, ref, x, 2, -1, False, dtype=True)
    check_shift(sub, ref, x, -3, 5, True, dtype=True)


@graded("4.1", weight=0.5)
def test_shift2d_rejects_1d(sub: SubmissionProxy) -> None:
    """raises ValueError for an array with fewer than two dimensions"""
    check_accepts(sub.shift2d, np.arange(4.0).reshape(1, 4), 0, 1)  # 2-D with one row: [[0, 0, 1, 2]]
    expect_error(sub.shift2d, np.arange(4.0), 1, 0, because="x is 1-D: there are no rows and columns to shift")


@graded("4.1", weight=0.5)
def test_shift2d_does_not_modify_input(sub: SubmissionProxy) -> None:
    """leaves its input array unchanged"""
    x = np.random.default_rng(42).standard_normal((2, 5, 6))
    check_no_mutation(sub.shift2d(x, 1, -2))
    check_no_mutation(sub.shift2d(x, -1, 3, circular=True))


# ---------------------------------------------------------------------------------------------
# Task 4.2: circular_conv2d
# ---------------------------------------------------------------------------------------------


def _zero_padded(ref: ModuleType, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    kh, kw = weight.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    return ref.conv2d_layer(xp, weight, bias)


def circular_hints(ref: ModuleType, c: CircularCase) -> list[Hint]:
    """Classic circular_conv2d mistakes for this case."""
    x, w, b = c.x, c.weight, c.bias
    kh, kw = w.shape[2:]
    centre = (
        "your output is shifted: the kernel's centre (kh//2, kw//2) must sit on pixel (i, j), "
        "out[i, j] = sum w[o, c, m, n] x[(i + m - kh//2) % H, (j + n - kw//2) % W]. "
        "(In Python -kh//2 means (-kh)//2, which is not -(kh//2).)"
    )
    hints = [
        Hint(
            "flipped-kernel",
            "your output equals the result with the kernel flipped: pair w[m, n] with x[i + m - kh//2, j + n - kw//2] "
            "(a cross-correlation, no flip).",
            lambda: ref.circular_conv2d(x, w[..., ::-1, ::-1], b),
        ),
        Hint(
            "zero-padding",
            "your output equals a convolution with ZERO padding: circular padding wraps around, so pixel "
            "(i + m - kh//2) % H is used (np.roll or np.pad(..., mode='wrap')).",
            lambda: _zero_padded(ref, x, w, b),
        ),
        Hint("conv-off-centre", centre, lambda: ref.circular_conv2d(rolled(x, -(kh // 2), -(kw // 2)), w, b)),
        Hint("conv-off-centre", centre, lambda: ref.circular_conv2d(rolled(x, 1, 1), w, b)),
        Hint(
            "transposed-kernel",
            "your output equals the result with the kernel transposed: in w[o, c, m, n], m runs along the rows and n "
            "along the columns.",
            lambda: ref.circular_conv2d(x, w.swapaxes(2, 3), b),
        ),
    ]
    if b is not None:
        hints.append(
            Hint(
                "missing-bias",
                "your output equals the result without the bias: add bias[o] to every position of output channel o.",
                lambda: ref.circular_conv2d(x, w, None),
            )
        )
    return hints


def check_circular(
    sub: SubmissionProxy, ref: ModuleType, c: CircularCase, *, x: Any = None, weight: Any = None, bias: Any = None
) -> None:
    """Call ``circular_conv2d`` on a case and check it against the reference (``x``... : views to send)."""
    outcome = sub.circular_conv2d(
        c.x if x is None else x, c.weight if weight is None else weight, bias=c.bias if bias is None else bias
    )
    x64, w64 = c.x.astype(np.float64), c.weight.astype(np.float64)
    b64 = None if c.bias is None else c.bias.astype(np.float64)
    scale = ref.circular_conv2d(np.abs(x64), np.abs(w64), None if b64 is None else np.abs(b64))
    check_array(
        outcome,
        ref.circular_conv2d(x64, w64, b64),
        scale=scale,
        hints=circular_hints(ref, CircularCase(x64, w64, b64)),
    )


@graded("4.2", weight=1, public=True)
def test_circular_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches hand-computed examples (the kernel is centred and wraps around)"""
    x = np.arange(12.0).reshape(1, 1, 3, 4)
    up_right = np.zeros((1, 1, 3, 3))
    up_right[0, 0, 0, 2] = 1.0  # out[i, j] = x[(i - 1) % 3, (j + 1) % 4]
    check_circular(sub, ref, CircularCase(x, up_right, None))
    box = np.ones((1, 1, 3, 3))  # the sum over the 3x3 neighbourhood, wrapping around
    check_circular(sub, ref, CircularCase(x, box, np.array([0.5])))


@graded("4.2", weight=3)
@given(case=circular_cases(), data=st.data())
def test_circular_matches_reference(
    sub: SubmissionProxy, ref: ModuleType, case: CircularCase, data: st.DataObject
) -> None:
    """matches the definition with channels, bias and 1/3/5 kernels (float32; C, Fortran, strided, reversed arrays)"""
    views = {name: data.draw(maybe_views(getattr(case, name))) for name in ("x", "weight", "bias")}
    check_circular(sub, ref, case, **views)


@graded("4.2", weight=1)
def test_circular_kernel_larger_than_image(sub: SubmissionProxy, ref: ModuleType) -> None:
    """wraps around more than once when the kernel is larger than the image"""
    rng = np.random.default_rng(43)
    check_circular(sub, ref, CircularCase(rng.standard_normal((1, 2, 2, 3)), rng.standard_normal((2, 2, 5, 5)), None))
    check_circular(
        sub, ref, CircularCase(rng.standard_normal((2, 1, 1, 4)), rng.standard_normal((1, 1, 3, 7)), np.array([1.5]))
    )


@graded("4.2", weight=1)
def test_circular_realistic_size(sub: SubmissionProxy, ref: ModuleType) -> None:
    """works on a realistic layer (2x3x16x13 input, four 5x3 filters and a bias)"""
    rng = np.random.default_rng(44)
    x, w, b = rng.standard_normal((2, 3, 16, 13)), rng.standard_normal((4, 3, 5, 3)), rng.standard_normal(4)
    check_circular(sub, ref, CircularCase(x, w, b))


@graded("4.2", weight=1)
def test_circular_rejects_bad_input(sub: SubmissionProxy) -> None:
    """raises ValueError for even kernel sizes and mismatched channels"""
    f = sub.circular_conv2d
    x = np.ones((1, 2, 5, 5))
    check_accepts(f, np.arange(50.0).reshape(1, 2, 5, 5), np.arange(18.0).reshape(1, 2, 3, 3), bias=None)
    for kh, kw in [(2, 2), (3, 2), (4, 3)]:
        expect_error(
            f, x, np.ones((1, 2, kh, kw)), because=f"a {kh}x{kw} kernel has no centre pixel (kernel sizes must be odd)"
        )
    expect_error(f, x, np.ones((1, 3, 3, 3)), because="weight expects 3 input channels but x has 2")
    # One channel on one side: NumPy's broadcasting (einsum, *) would quietly stretch it.
    expect_error(f, np.ones((1, 1, 5, 5)), np.ones((2, 3, 3, 3)), because="weight expects 3 input channels but x has 1")
    expect_error(f, np.ones((1, 3, 5, 5)), np.ones((2, 1, 3, 3)), because="weight expects 1 input channel but x has 3")


@graded("4.2", weight=1)
def test_circular_rejects_bad_shapes(sub: SubmissionProxy) -> None:
    """raises ValueError for a wrong number of dimensions or a bias that does not match the filters"""
    f = sub.circular_conv2d
    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
    check_accepts(f, np.arange(50.0).reshape(1, 2, 5, 5), np.arange(54.0).reshape(3, 2, 3, 3), bias=np.arange(3.0))
    expect_error(f, np.ones((2, 5, 5)), w, because="x is 3-D; it must be (N, C_in, H, W)")
    expect_error(f, np.ones((1, 1, 2, 5, 5)), w, because="x is 5-D; it must be (N, C_in, H, W)")
    expect_error(f, x, np.ones((2, 3, 3)), because="weight is 3-D; it must be (C_out, C_in, kh, kw)")
    # Too few dimensions to index: x.shape[1] would raise IndexError, not the ValueError the contract asks for.
    expect_error(f, np.ones(5), w, because="x is 1-D; it must be (N, C_in, H, W)")
    expect_error(f, x, np.ones(3), because="weight is 1-D; it must be (C_out, C_in, kh, kw)")
    expect_error(f, x, w, bias=np.ones(1), because="bias has 1 entry but there are 3 filters (it must not broadcast)")
    expect_error(f, x, w, bias=np.ones(2), because="bias has 2 entries but there are 3 filters")
    expect_error(f, x, w, bias=np.ones((3, 1)), because="bias must have shape (3,), not (3, 1)")


@graded("4.2", weight=0.5)
def test_circular_does_not_modify_inputs(sub: SubmissionProxy) -> None:
    """leaves x, weight and bias unchanged"""
    rng = np.random.default_rng(45)
    x, w, b = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    check_no_mutation(sub.circular_conv2d(x, w, bias=b))


# ---------------------------------------------------------------------------------------------
# Task 4.3: equivariance_error
# ---------------------------------------------------------------------------------------------


def call_explaining(function: StudentFunction, *args: Any, explain: str, mistake: str, **kwargs: Any) -> Outcome:
    """Call the student's function; if it raises ValueError, say why this input is valid (``explain``)."""
    result = function.attempt(*args, **kwargs)
    if not isinstance(result, StudentRaised):
        return result
    if not result.is_a("ValueError"):
        return function(*args, **kwargs)  # the standard failure (not implemented yet, or what it raised)
    call = describe_call(function.name, args, kwargs, function.argnames)
    text = f"{call}\nit raised {result.type_name}: {result.message}"
    if result.traceback:
        text += f"\n{result.traceback.rstrip()}"
    if result.output.strip():
        text += f"\nYour function printed:\n{result.output.rstrip()}"
    raise CheckFailed(text, hint=explain, mistake=mistake)


def _differences(layer: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dy: int, dx: int, shift: Any) -> np.ndarray:
    return layer(shift(x, dy, dx)) - shift(layer(x), dy, dx)


def error_hints(ref: ModuleType, layer: Layer, x: np.ndarray, dy: int, dx: int) -> list[Hint]:
    """Classic equivariance_error mistakes for this call (each a float a wrong submission returns)."""

    def zero_fill(v: np.ndarray, a: int, b: int) -> np.ndarray:
        return ref.shift2d(v, a, b, circular=False)

    diff = lambda: _differences(layer, x, dy, dx, rolled)  # noqa: E731
    return [
        Hint(
            "non-circular-shift",
            "your value is the error for a shift that fills with zeros; the contract uses the circular shift "
            "(shift2d(..., circular=True)) on both sides.",
            lambda: float(np.max(np.abs(_differences(layer, x, dy, dx, zero_fill)))),
        ),
        Hint(
            "shift-wrong-direction",
            "your value is the error for the shift (-dy, -dx): check the direction of your shift2d (Task 4.1), "
            "positive dy moves the content down and positive dx moves it right.",
            lambda: float(ref.equivariance_error(layer, x, -dy, -dx)),
        ),
        Hint(
            "shift-axes-swapped",
            "your value is the error for the shift (dx, dy): check your shift2d (Task 4.1), dy moves rows (axis -2) "
            "and dx moves columns (axis -1).",
            lambda: float(ref.equivariance_error(layer, x, dx, dy)),
        ),
        Hint(
            "shift-output-wrong-direction",
            "your value compares layer(shift(x, dy, dx)) with the output shifted the OTHER way; shift both by "
            "(dy, dx).",
            lambda: float(np.max(np.abs(layer(rolled(x, dy, dx)) - rolled(layer(x), -dy, -dx)))),
        ),
        Hint(
            "signed-difference",
            "your value is the largest SIGNED difference; take the largest absolute difference, max |a - b|.",
            lambda: float(np.max(diff())),
        ),
        Hint(
            "signed-difference",
            "your value is the largest SIGNED difference; take the largest absolute difference, max |a - b|.",
            lambda: float(np.max(-diff())),
        ),
        Hint(
            "mean-not-max",
            "your value is the MEAN absolute difference; the error is the largest one, max |a - b|.",
            lambda: float(np.mean(np.abs(diff()))),
        ),
        Hint(
            "norm-not-max",
            "your value is the Euclidean norm of the difference; the error is the largest absolute entry, max |a - b|.",
            lambda: float(np.linalg.norm(diff())),
        ),
        Hint(
            "sum-not-max",
            "your value is the SUM of the absolute differences; the error is the largest one, max |a - b|.",
            lambda: float(np.sum(np.abs(diff()))),
        ),
    ]


def check_error(sub: SubmissionProxy, ref: ModuleType, layer: Layer, x: Any, dy: int, dx: int) -> None:
    """Call ``equivariance_error`` and check it is a float close to the reference's value."""
    x_ = plain(x)
    y = layer(x_)
    what_changes = (
        f"only the number of channels may change, here {x_.shape[1]} -> {y.shape[1]}"
        if x_.ndim == 4
        else f"x is {x_.ndim}-D: the contract takes any leading axes, (..., H, W), and the size is shape[-2:]"
    )
    outcome = call_explaining(
        sub.equivariance_error,
        layer,
        x,
        dy,
        dx,
        explain=f"this layer keeps the spatial size {x_.shape[-2:]} ({what_changes}), so equivariance_error must "
        "return its error.",
        mistake="rejects-size-preserving-layer",
    )
    expected = ref.equivariance_error(layer, x_, dy, dx)
    got = outcome.value
    if type(got) is not float:
        raise outcome.fail(f"the result should be a Python float (e.g. float(np.max(...))); got {describe_value(got)}")
    rtol = FLOAT32_RTOL if x_.dtype == np.float32 else FLOAT64_RTOL
    tolerance = 2 * rtol * (float(np.max(np.abs(y), initial=0.0)) + 1.0) + 1e-12
    if abs(got - expected) <= tolerance:
        return
    hint = matching_hint(error_hints(ref, layer, x_, dy, dx), got, lambda g, wrong: abs(g - wrong) <= tolerance)
    raise outcome.fail(
        f"expected the error {expected:.6g}\ngot: {got:.6g} (allowed error {tolerance:.1g})\n"
        "(equivariance_error is usually built on shift2d: if shift2d fails its own tests, fix it first.)",
        hint=hint,
    )


@graded("4.3", weight=1, public=True)
def test_error_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """is 0 for a scaling and 1 for a bias with a single 1 (shifted by one row)"""
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    check_error(sub, ref, Layer({"kind": "scale", "factor": 2.0}), x, 1, 0)  # 0.0
    bump = np.zeros((3, 3))
    bump[1, 1] = 1.0  # layer(shift(x)) - shift(layer(x)) = bump - shift(bump): max |.| = 1
    check_error(sub, ref, Layer({"kind": "position_bias", "bias": bump}), x, 1, 0)
    check_error(sub, ref, Layer({"kind": "position_bias", "bias": 3 * bump}), x, 0, -2)  # 3.0


def error_battery(rng: np.random.Generator, C: int, H: int, W: int) -> list[dict[str, Any]]:
    """One layer of each kind, for an input ``(N, C, H, W)`` (H and W even)."""
    conv = conv_layer(rng.standard_normal((3, C, 3, 3)), rng.standard_normal(3))
    return [
        conv,
        {"kind": "relu"},
        {"kind": "square"},
        compose(conv, {"kind": "relu"}, conv_layer(rng.standard_normal((2, 3, 1, 1)))),
        {"kind": "position_bias", "bias": rng.standard_normal((H, W))},
        {"kind": "untied_1x1", "weight": rng.standard_normal((H, W, 2, C))},
        {"kind": "subsample_upsample", "stride": 2},
        {"kind": "zero_pad_conv", "weight": rng.standard_normal((2, C, 3, 3))},
        compose({"kind": "position_bias", "bias": rng.standard_normal((H, W))}, {"kind": "square"}),
    ]


@graded("4.3", weight=1.5)
def test_error_layer_battery(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches the definition for convolutions, pointwise ops, untied and position-dependent layers"""
    rng = np.random.default_rng(46)
    x = rng.standard_normal((2, 2, 6, 8))
    for spec in error_battery(rng, 2, 6, 8):
        for dy, dx in [(1, 0), (-2, 3)]:
            check_error(sub, ref, Layer(spec), x, dy, dx)


@graded("4.3", weight=1.5)
@given(case=equivariance_cases(), data=st.data())
def test_error_matches_reference(
    sub: SubmissionProxy, ref: ModuleType, case: EquivarianceCase, data: st.DataObject
) -> None:
    """matches the definition on generated layers, inputs and shifts (float32 and views included)"""
    x = data.draw(maybe_views(case.x.astype(data.draw(dtypes()))))
    check_error(sub, ref, case.layer, x, case.dy, case.dx)


@graded("4.3", weight=1)
def test_error_any_leading_axes(sub: SubmissionProxy, ref: ModuleType) -> None:
    """works on an input (H, W) or (C, H, W) too: the layer and the shifts act on the last two axes"""
    rng = np.random.default_rng(56)
    rows = np.broadcast_to(np.arange(5.0)[:, None], (5, 6)).copy()  # 0, 1, ..., 4 down the rows
    for x in (rng.standard_normal((5, 6)), rng.standard_normal((2, 5, 6))):
        check_error(sub, ref, Layer({"kind": "square"}), x, -2, 3)  # 0.0
        check_error(sub, ref, Layer({"kind": "position_bias", "bias": rows}), x, 1, 2)  # 4.0: row 0 gets row 4's


@graded("4.3", weight=1)
def test_error_rejects_size_change(sub: SubmissionProxy) -> None:
    """raises ValueError when the layer changes the spatial size"""
    x = np.random.default_rng(47).standard_normal((1, 2, 5, 6))
    bump = np.zeros((5, 6))
    bump[2, 3] = 1.5
    check_accepts(sub.equivariance_error, Layer({"kind": "position_bias", "bias": bump}), x, 1, 1)  # 1.5
    expect_error(
        sub.equivariance_error,
        Layer({"kind": "crop", "by": 1}),
        x,
        1,
        1,
        because="the layer turns a 5x6 input into a 4x5 output, so its output cannot be shifted like its input",
    )
    expect_error(
        sub.equivariance_error,
        Layer({"kind": "global_avg_pool"}),
        x,
        2,
        0,
        because="the layer turns a 5x6 input into a 1x1 output",
    )


@graded("4.3", weight=0.5)
def test_error_does_not_modify_input(sub: SubmissionProxy) -> None:
    """leaves its input array unchanged"""
    rng = np.random.default_rng(48)
    layer = Layer({"kind": "position_bias", "bias": rng.standard_normal((5, 4))})
    check_no_mutation(sub.equivariance_error(layer, rng.standard_normal((1, 2, 5, 4)), 2, -1))


# ---------------------------------------------------------------------------------------------
# Task 4.4: is_shift_equivariant
# ---------------------------------------------------------------------------------------------


DEPENDS_NOTE = (
    "(is_shift_equivariant is usually built on equivariance_error and shift2d: if those fail their own tests, "
    "fix them first.)"
)


def equivariant_hints(
    ref: ModuleType, layer: Layer, x: np.ndarray, shifts: Sequence[tuple[int, int]], atol: float
) -> list[Hint]:
    """Classic is_shift_equivariant mistakes (each the bool a wrong submission returns); computed after a failure."""
    errors = [float(np.max(np.abs(_differences(layer, x, dy, dx, rolled)))) for dy, dx in shifts]
    zero_fill = [
        float(np.max(np.abs(_differences(layer, x, dy, dx, lambda v, a, b: ref.shift2d(v, a, b, circular=False)))))
        for dy, dx in shifts
    ]
    first_only = errors[0] <= atol if errors else True
    leading = (
        [
            Hint(
                "assumes-4d-input",
                f"your answer is False for a layer that keeps the spatial size of this {x.ndim}-D input: x may have "
                "any leading axes, (..., H, W); compare the last two axes, layer(x).shape[-2:] with x.shape[-2:].",
                lambda: False,
            )
        ]
        if x.ndim != 4 and layer(x).shape[-2:] == x.shape[-2:]
        else []
    )
    any_shift = any(e <= atol for e in errors)
    every = "it must be True only if the error is <= atol for EVERY (dy, dx) in shifts"
    if len(shifts) < 2:  # with one shift, these mistakes give the right answer
        loops = []
    elif first_only == any_shift:  # the two mistakes give the same answer here: name both
        loops = [
            Hint(
                "first-shift-only",
                f"your answer is the one for the first shift only, or True as soon as one shift works; {every} "
                "(here a later shift reveals the failure).",
                lambda: first_only,
            )
        ]
    else:
        loops = [
            Hint("first-shift-only", f"your answer is the one for the FIRST shift only; {every}.", lambda: first_only),
            Hint("any-not-all", f"your answer is True as soon as ONE shift works; {every}.", lambda: any_shift),
        ]
    return [
        *leading,
        *loops,
        Hint(
            "strict-inequality",
            "an error exactly equal to atol still counts as equivariant (error <= atol, not <).",
            lambda: all(e < atol for e in errors),
        ),
        Hint(
            "allclose-rtol",
            "your answer equals np.allclose(..., atol=atol), which also allows a RELATIVE error (rtol=1e-5); the "
            "test is max |difference| <= atol.",
            lambda: all(
                bool(np.allclose(layer(rolled(x, dy, dx)), rolled(layer(x), dy, dx), atol=atol)) for dy, dx in shifts
            ),
        ),
        Hint(
            "atol-ignored",
            "your answer ignores the atol argument (it equals the answer for the default atol=1e-8).",
            lambda: all(e <= 1e-8 for e in errors),
        ),
        Hint(
            "non-circular-shift",
            "your answer is the one for shifts that fill with zeros; use circular shifts "
            "(shift2d(..., circular=True)), under which convolutions that wrap around are exactly equivariant.",
            lambda: all(e <= atol for e in zero_fill),
        ),
        Hint(
            "shift-axes-swapped",
            "your answer is the one for the shifts (dx, dy): each pair in shifts is (dy, dx), rows first; pass them "
            "to equivariance_error in that order.",
            lambda: all(float(np.max(np.abs(_differences(layer, x, dx, dy, rolled)))) <= atol for dy, dx in shifts),
        ),
    ]


def check_equivariant(
    sub: SubmissionProxy,
    ref: ModuleType,
    spec: dict[str, Any],
    x: Any,
    shifts: list[tuple[int, int]],
    *,
    atol: float | None = None,
) -> None:
    """Call ``is_shift_equivariant`` and check the bool against the reference."""
    layer, x_ = Layer(spec), plain(x)
    kwargs = {} if atol is None else {"atol": atol}
    changes_size = layer(x_).shape[-2:] != x_.shape[-2:]
    explain = (
        "a layer that changes the spatial size cannot be shift-equivariant: return False (check the output's "
        "size before computing any error)."
        if changes_size
        else "this layer keeps the spatial size (only the number of channels may change): return whether it commutes "
        "with the shifts."
    )
    mistake = "raises-on-size-change" if changes_size else "raised"
    outcome = call_explaining(sub.is_shift_equivariant, layer, x, shifts, explain=explain, mistake=mistake, **kwargs)
    expected = bool(ref.is_shift_equivariant(layer, x_, shifts, **kwargs))
    try:
        check_exact(outcome, expected)
    except CheckFailed:
        hints = [] if changes_size else equivariant_hints(ref, layer, x_, shifts, 1e-8 if atol is None else atol)
        try:
            check_exact(outcome, expected, hints=hints)
        except CheckFailed as failed:
            raise CheckFailed(f"{failed.message}\n{DEPENDS_NOTE}", hint=failed.hint, mistake=failed.mistake) from None


@graded("4.4", weight=1, public=True)
def test_equivariant_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """says True for a circular convolution and False for a position-dependent bias"""
    rng = np.random.default_rng(49)
    x = rng.standard_normal((1, 2, 6, 6))
    check_equivariant(sub, ref, conv_layer(rng.standard_normal((3, 2, 3, 3))), x, [(1, 0), (0, 1), (2, 3)])  # True
    check_equivariant(sub, ref, {"kind": "position_bias", "bias": rng.standard_normal((6, 6))}, x, [(1, 0)])  # False


@graded("4.4", weight=1)
def test_equivariant_layers(sub: SubmissionProxy, ref: ModuleType) -> None:
    """says True for circular convolutions, pointwise operations and their compositions (and False after a bias map)"""
    rng = np.random.default_rng(50)
    x = rng.standard_normal((2, 2, 6, 5))
    conv = conv_layer(rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3))
    layers = [
        conv,
        conv_layer(rng.standard_normal((2, 2, 5, 1))),
        {"kind": "relu"},
        {"kind": "square"},
        {"kind": "scale", "factor": -1.5},
        compose(conv, {"kind": "relu"}, conv_layer(rng.standard_normal((1, 3, 3, 3))), {"kind": "square"}),
    ]
    for spec in layers:
        check_equivariant(sub, ref, spec, x, [(1, 0), (0, -2), (3, 4), (-7, 11)])
    # The same convolution followed by a bias that differs at each position: False (a constant True loses here).
    position_bias = {"kind": "position_bias", "bias": rng.standard_normal((6, 5))}
    check_equivariant(sub, ref, compose(conv, position_bias), x, [(1, 0), (0, -2)])


def column_varying_layers(rng: np.random.Generator, C: int, H: int, W: int) -> list[dict[str, Any]]:
    """Non-equivariant layers that DO commute with vertical shifts (they vary along the columns only)."""
    column_bias = np.broadcast_to(np.arange(W, dtype=np.float64), (H, W)).copy()
    column_weights = np.broadcast_to(rng.standard_normal((1, W, 2, C)), (H, W, 2, C)).copy()
    return [
        {"kind": "position_bias", "bias": column_bias},
        {"kind": "untied_1x1", "weight": column_weights},
        compose(conv_layer(rng.standard_normal((C, C, 3, 3))), {"kind": "position_bias", "bias": column_bias}),
    ]


@graded("4.4", weight=1.5)
def test_not_equivariant_later_shift(sub: SubmissionProxy, ref: ModuleType) -> None:
    """says False for untied and position-dependent layers, even when only a later shift reveals it"""
    rng = np.random.default_rng(51)
    x = rng.standard_normal((1, 2, 4, 6))
    # (0, 0) and full-period shifts are the identity; vertical shifts leave these layers unchanged.
    shifts = [(0, 0), (4, 0), (0, 6), (1, 0), (-3, 6), (2, 1)]
    layers = column_varying_layers(rng, 2, 4, 6)
    check_equivariant(sub, ref, layers[0], x, [(0, 1), (1, 0), (0, 0)])  # one failing shift is enough for False
    for spec in layers:
        check_equivariant(sub, ref, spec, x, shifts)
    zero_pad = {"kind": "zero_pad_conv", "weight": rng.standard_normal((2, 2, 3, 3))}
    check_equivariant(sub, ref, zero_pad, x, [(0, 0), (4, -6), (1, 1)])
    untied = {"kind": "untied_1x1", "weight": rng.standard_normal((4, 6, 3, 2))}
    check_equivariant(sub, ref, untied, x, [(0, 0), (0, 1)])
    # The same shifts with a tied 1x1 layer (a circular convolution): True (a constant False loses here).
    check_equivariant(sub, ref, conv_layer(rng.standard_normal((3, 2, 1, 1))), x, shifts)


def row_varying_layers(rng: np.random.Generator, C: int, H: int, W: int) -> list[dict[str, Any]]:
    """Non-equivariant layers that DO commute with horizontal shifts (they vary down the rows only)."""
    row_weights = np.broadcast_to(rng.standard_normal((H, 1, 2, C)), (H, W, 2, C)).copy()
    return [
        {"kind": "untied_1x1", "weight": row_weights},
        compose(conv_layer(rng.standard_normal((C, C, 3, 3))), {"kind": "untied_1x1", "weight": row_weights}),
    ]


@graded("4.4", weight=1)
def test_equivariant_along_one_axis(sub: SubmissionProxy, ref: ModuleType) -> None:
    """tells dy from dx: a layer that varies down the rows only commutes with horizontal shifts, not vertical ones"""
    rng = np.random.default_rng(57)
    x = rng.standard_normal((1, 2, 5, 6))
    # No full-period shift in either list: the wrong axis must fail every shift, so that the hints tell the
    # swapped pair (dx, dy) from "True as soon as one shift works".
    vertical, horizontal = [(1, 0), (-2, 0), (3, 0)], [(0, 1), (0, -2), (0, 4)]
    for spec in row_varying_layers(rng, 2, 5, 6):
        check_equivariant(sub, ref, spec, x, horizontal)  # True
        check_equivariant(sub, ref, spec, x, vertical)  # False
    # The reverse: varying along the columns only (the first layer is a 1x1 untied layer).
    column_varying = column_varying_layers(rng, 2, 5, 6)[1]
    check_equivariant(sub, ref, column_varying, x, vertical)  # True
    check_equivariant(sub, ref, column_varying, x, horizontal)  # False


@graded("4.4", weight=1)
def test_equivariant_any_leading_axes(sub: SubmissionProxy, ref: ModuleType) -> None:
    """works on an input (H, W) or (C, H, W) too: the size check and the shifts use the last two axes"""
    rng = np.random.default_rng(58)
    for x in (rng.standard_normal((5, 6)), rng.standard_normal((2, 5, 6))):
        bias = {"kind": "position_bias", "bias": rng.standard_normal((5, 6))}
        check_equivariant(sub, ref, {"kind": "relu"}, x, [(1, 0), (2, -3)])  # True
        check_equivariant(sub, ref, bias, x, [(1, 0)])  # False
        check_equivariant(sub, ref, {"kind": "crop", "by": 1}, x, [(0, 1)])  # False: 5x6 becomes 4x5


@graded("4.4", weight=1)
def test_subsample_upsample_even_shifts(sub: SubmissionProxy, ref: ModuleType) -> None:
    """says True for subsample-then-upsample (stride 2) under even shifts only, False once an odd one comes"""
    x = np.random.default_rng(52).standard_normal((1, 1, 6, 8))
    spec = {"kind": "subsample_upsample", "stride": 2}
    check_equivariant(sub, ref, spec, x, [(2, 0), (0, -2), (4, 6)])  # True
    check_equivariant(sub, ref, spec, x, [(2, 0), (0, 2), (-2, 4), (1, 0)])  # False: the last one is odd
    check_equivariant(sub, ref, spec, x, [(0, 4), (2, 3)])  # False


@graded("4.4", weight=0.5)
def test_size_changing_layer(sub: SubmissionProxy, ref: ModuleType) -> None:
    """says False (without raising) for a layer that changes the spatial size"""
    x = np.random.default_rng(53).standard_normal((1, 2, 6, 6))
    check_equivariant(sub, ref, {"kind": "global_avg_pool"}, x, [(1, 0), (0, 2)])
    check_equivariant(sub, ref, {"kind": "crop", "by": 1}, x, [(0, 0)])
    check_equivariant(sub, ref, {"kind": "relu"}, x, [(1, 0), (0, 2)])  # keeps the size: True


@graded("4.4", weight=1)
def test_equivariant_atol(sub: SubmissionProxy, ref: ModuleType) -> None:
    """compares the largest error with atol (passed by keyword), error == atol included"""
    x = np.random.default_rng(54).integers(-5, 6, size=(1, 1, 4, 4)).astype(np.float64)
    bias = np.zeros((4, 4))
    bias[2, 1] = 0.5  # the error of any nonzero shift is exactly 0.5
    spec = {"kind": "position_bias", "bias": bias}
    check_equivariant(sub, ref, spec, x, [(1, 0), (0, 1)], atol=0.6)  # True
    check_equivariant(sub, ref, spec, x, [(1, 0)], atol=0.4)  # False
    check_equivariant(sub, ref, spec, x, [(1, 0), (2, 2)], atol=0.5)  # True: error <= atol
    tiny = {"kind": "position_bias", "bias": bias * 1e-5}  # error 5e-6, far above the default atol
    check_equivariant(sub, ref, tiny, x + 100.0, [(1, 1)])  # False (np.allclose would say True)
    check_equivariant(sub, ref, tiny, x, [(1, 1)], atol=1e-4)  # True


@graded("4.4", weight=1)
@given(
    case=equivariance_cases(),
    shifts=st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), max_size=3),
    data=st.data(),
)
def test_equivariant_matches_reference(
    sub: SubmissionProxy, ref: ModuleType, case: EquivarianceCase, shifts: list[tuple[int, int]], data: st.DataObject
) -> None:
    """matches the definition on generated layers and lists of shifts (x in any memory layout)"""
    x = data.draw(maybe_views(case.x))
    check_equivariant(sub, ref, case.layer.spec, x, [(case.dy, case.dx), *shifts])


@graded("4.4", weight=0.5)
def test_equivariant_does_not_modify_input(sub: SubmissionProxy) -> None:
    """leaves its input array unchanged"""
    rng = np.random.default_rng(55)
    layer = Layer(conv_layer(rng.standard_normal((2, 2, 3, 3))))
    check_no_mutation(sub.is_shift_equivariant(layer, rng.standard_normal((1, 2, 5, 4)), [(1, 2), (-1, 0)]))  # True
    bias = Layer({"kind": "position_bias", "bias": rng.standard_normal((5, 4))})
    check_no_mutation(sub.is_shift_equivariant(bias, rng.standard_normal((1, 2, 5, 4)), [(1, 2), (-1, 0)]))  # False
