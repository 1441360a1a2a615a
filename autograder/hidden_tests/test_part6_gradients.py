"""Part 6: conv2d_backward (Task 6.1) and locally_connected2d_backward (6.2).

Each gradient is checked separately (dx, dweight, dbias) so that a half-right backward pass earns
part of the points. Tolerances are scaled to the terms summed: the same gradient computed from
``|dout|``, ``|x|`` and ``|weight|``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograder.checks import (
    Hint,
    Outcome,
    SubmissionProxy,
    check_accepts,
    check_array,
    check_no_mutation,
    expect_error,
    reproduces,
)
from autograder.feedback import describe_value
from autograder.hidden_tests.strategies import LayerCase, draw_array, dtypes, layer_cases, maybe_views

graded = pytest.mark.graded

GRADIENTS = ("dx", "dweight", "dbias")

# ---------------------------------------------------------------------------------------------
# Part-specific strategies
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvBackwardCase:
    """Arguments of ``conv2d_backward``."""

    dout: np.ndarray
    x: np.ndarray
    weight: np.ndarray
    stride: int
    padding: int

    def as_float64(self) -> ConvBackwardCase:
        dout, x, weight = (a.astype(np.float64) for a in (self.dout, self.x, self.weight))
        return ConvBackwardCase(dout, x, weight, self.stride, self.padding)


@st.composite
def conv_backward_cases(draw: st.DrawFn, *, max_stride: int = 3, max_padding: int = 2) -> ConvBackwardCase:
    """A conv layer's input, filters, stride and padding, and a ``dout`` of its output's shape."""
    c: LayerCase = draw(layer_cases(max_side=6, max_stride=max_stride, max_padding=max_padding, bias=False))
    N, _, H, W = c.x.shape
    C_out, _, kh, kw = c.weight.shape
    shape = (N, C_out, (H + 2 * c.padding - kh) // c.stride + 1, (W + 2 * c.padding - kw) // c.stride + 1)
    dout = draw_array(draw, shape).astype(c.x.dtype)
    return ConvBackwardCase(dout, c.x, c.weight, c.stride, c.padding)


@dataclass(frozen=True)
class LCBackwardCase:
    """Arguments of ``locally_connected2d_backward``."""

    dout: np.ndarray
    x: np.ndarray
    weight: np.ndarray
    stride: int

    def as_float64(self) -> LCBackwardCase:
        return LCBackwardCase(
            self.dout.astype(np.float64), self.x.astype(np.float64), self.weight.astype(np.float64), self.stride
        )


@st.composite
def lc_backward_cases(draw: st.DrawFn, *, max_side: int = 6, max_stride: int = 3) -> LCBackwardCase:
    """A locally-connected layer's input, per-position filters and stride, and a matching ``dout``."""
    N, C_in, C_out = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kh, kw = draw(st.integers(1, min(3, H))), draw(st.integers(1, min(3, W)))
    stride = draw(st.integers(1, max_stride))
    H_out, W_out = (H - kh) // stride + 1, (W - kw) // stride + 1
    x, weight = draw_array(draw, (N, C_in, H, W)), draw_array(draw, (H_out, W_out, C_out, C_in, kh, kw))
    dout = draw_array(draw, (N, C_out, H_out, W_out))
    dtype = draw(dtypes())
    return LCBackwardCase(dout.astype(dtype), x.astype(dtype), weight.astype(dtype), stride)


# ---------------------------------------------------------------------------------------------
# Shared checking
# ---------------------------------------------------------------------------------------------


def check_gradient_tuple(outcome: Outcome) -> tuple[Any, Any, Any]:
    """Fail unless the call returned a tuple of three values; return them."""
    value = outcome.value
    if not isinstance(value, tuple | list) or len(value) != 3:
        raise outcome.fail(
            "the result should be a tuple (dx, dweight, dbias) of three arrays; got " + describe_value(value)
        )
    return value[0], value[1], value[2]


def _overwritten_dx(dout: np.ndarray, weight: np.ndarray, x_shape: tuple[int, ...], stride: int, padding: int) -> Any:
    """The conv dx when each kernel offset's contribution is assigned (=) instead of added (+=)."""
    N, C_in, H, W = x_shape
    _, _, H_out, W_out = dout.shape
    kh, kw = weight.shape[2:]
    dxp = np.zeros((N, C_in, H + 2 * padding, W + 2 * padding))
    for m in range(kh):
        for q in range(kw):
            rows = slice(m, m + stride * (H_out - 1) + 1, stride)
            cols = slice(q, q + stride * (W_out - 1) + 1, stride)
            dxp[:, :, rows, cols] = np.einsum("noij,oc->ncij", dout, weight[:, :, m, q])
    return dxp[:, :, padding : padding + H, padding : padding + W]


def _overwritten_windows(
    dout: np.ndarray,
    window_gradient: Any,
    x_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: int,
    padding: int,
    *,
    per_channel: bool,
) -> np.ndarray:
    """dx when a loop over output positions assigns (=) each window's gradient instead of adding it.

    The loop runs as in the usual naive code, ``for n: for o: for i: for j:`` (``per_channel``:
    ``dx_pad[n, :, window] = w[o] * dout[n, o, i, j]``, so the last filter's window wins) or ``for n:
    for i: for j:`` with the filters summed (``dx_pad[n, :, window] = sum_o w[o] * dout[n, o, i, j]``).

    Args:
        dout: the incoming gradient ``(N, C_out, H_out, W_out)``.
        window_gradient: ``(i, j, o) -> (C_in, kh, kw)``, the weight that position and filter use.
        x_shape: the input's shape.
        kernel: ``(kh, kw)``.
        stride: the stride.
        padding: the padding (cut off at the end).
        per_channel: whether each filter's window is assigned on its own.

    Returns:
        The mistaken dx, of x's shape.
    """
    N, C_in, H, W = x_shape
    _, C_out, H_out, W_out = dout.shape
    kh, kw = kernel
    dxp = np.zeros((N, C_in, H + 2 * padding, W + 2 * padding))
    for n in range(N):
        for o in range(C_out) if per_channel else (None,):
            for i in range(H_out):
                for j in range(W_out):
                    window = (n, slice(None), slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw))
                    filters = [o] if o is not None else range(C_out)
                    dxp[window] = sum(window_gradient(i, j, f) * dout[n, f, i, j] for f in filters)
    return dxp[:, :, padding : padding + H, padding : padding + W]


OVERWRITTEN_TEXT = (
    "your dx keeps only one contribution where receptive fields overlap: each input pixel collects the "
    "contributions of every output it fed into, and of every filter (dx[...] += ..., not dx[...] = ...)."
)


def _window_overwrite_hints(
    dout: np.ndarray,
    window_gradient: Any,
    x_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: int,
    padding: int,
) -> list[Hint]:
    """The two loops of :func:`_overwritten_windows` (each filter on its own, or summed) as hints."""
    return [
        Hint(
            "dx-overwritten",
            OVERWRITTEN_TEXT,
            partial(_overwritten_windows, dout, window_gradient, x_shape, kernel, stride, padding, per_channel=each),
        )
        for each in (True, False)
    ]


# ---------------------------------------------------------------------------------------------
# Task 6.1: conv2d_backward
# ---------------------------------------------------------------------------------------------


def conv_hints(ref: ModuleType, c: ConvBackwardCase, what: str) -> list[Hint]:
    """Classic conv2d_backward mistakes in one gradient (``what`` is dx, dweight or dbias)."""
    s, p = c.stride, c.padding
    N, _, H_out, W_out = c.dout.shape
    grads = lambda weight=c.weight: ref.conv2d_backward(c.dout, c.x, weight, stride=s, padding=p)  # noqa: E731
    flipped = c.weight[..., ::-1, ::-1]
    averaged = (
        "your {g} is the right one divided by {d}: a shared {p} was used at every output position (and for every "
        "example), so its gradient is the SUM of their contributions, not the mean."
    )
    if what == "dx":
        padded = np.pad(c.x, ((0, 0), (0, 0), (p, p), (p, p)))
        kernel = c.weight.shape[2:]
        return [
            Hint(
                "dx-padding-not-cropped",
                f"your dx is the gradient of the PADDED input (with the {p} padding rows/columns on each side); the "
                "padding is not an input: cut it off, dx has x's shape.",
                lambda: ref.conv2d_backward(c.dout, padded, c.weight, stride=s, padding=0)[0],
            ),
            Hint(
                "flipped-kernel",
                "your dx equals the right one with the kernel flipped: x_pad[n, c, i*s + m, j*s + q] receives "
                "dout[n, o, i, j] * w[o, c, m, q] (the same w[m, q], not w[kh-1-m, kw-1-q]).",
                lambda: grads(flipped)[0],
            ),
            Hint("dx-overwritten", OVERWRITTEN_TEXT, lambda: _overwritten_dx(c.dout, c.weight, c.x.shape, s, p)),
            *_window_overwrite_hints(c.dout, lambda i, j, o: c.weight[o], c.x.shape, kernel, s, p),
            *(
                [
                    Hint(
                        "dx-crop-minus-zero",
                        "your dx is empty: with padding 0, dx_pad[:, :, p:-p, p:-p] is dx_pad[:, :, 0:0, 0:0] (-0 is "
                        "0), which cuts off everything. Cut the padding off with dx_pad[:, :, p : p + H, p : p + W].",
                        lambda: np.zeros(c.x.shape[:2] + (0, 0)),
                    )
                ]
                if p == 0
                else []
            ),
        ]
    if what == "dweight":
        return [
            Hint(
                "grad-averaged",
                averaged.format(g="dweight", d="the number of output positions", p="weight"),
                lambda: grads()[1] / (H_out * W_out),
            ),
            Hint(
                "grad-averaged",
                averaged.format(g="dweight", d="N * H_out * W_out", p="weight"),
                lambda: grads()[1] / (N * H_out * W_out),
            ),
            Hint(
                "flipped-kernel",
                "your dweight is flipped: dweight[o, c, m, q] = sum dout[n, o, i, j] * x_pad[n, c, i*s + m, j*s + q].",
                lambda: grads()[1][..., ::-1, ::-1],
            ),
            Hint(
                "grad-averaged",
                averaged.format(g="dweight", d="the batch size N", p="weight"),
                lambda: grads()[1] / N,
            ),
        ]
    return [
        Hint(
            "dbias-averaged",
            averaged.format(g="dbias", d="the number of output positions", p="bias"),
            lambda: grads()[2] / (H_out * W_out),
        ),
        Hint(
            "dbias-averaged",
            averaged.format(g="dbias", d="N * H_out * W_out", p="bias"),
            lambda: grads()[2] / (N * H_out * W_out),
        ),
        Hint(
            "dbias-batch-not-summed",
            "your dbias sums over the positions of the first example only; sum dout over the batch too (axes 0, 2, 3).",
            lambda: c.dout[0].sum(axis=(1, 2)),
        ),
        Hint(
            "dbias-wrong-axes",
            "your dbias keeps the wrong axes: it has one entry per output channel, dout.sum(axis=(0, 2, 3)).",
            lambda: c.dout.sum(axis=(1, 2, 3)),
        ),
    ]


def check_conv_backward(
    sub: SubmissionProxy,
    ref: ModuleType,
    c: ConvBackwardCase,
    parts: tuple[str, ...] = GRADIENTS,
    *,
    x: Any = None,
    dout: Any = None,
    weight: Any = None,
    defaults: bool = False,
) -> Outcome:
    """Call ``conv2d_backward`` and check the named gradients against the reference (``x``... : views to send).

    ``defaults`` sends only ``dout``, ``x`` and ``weight``, for a case with stride 1 and padding 0 (the
    contract's defaults).
    """
    if defaults and (c.stride != 1 or c.padding != 0):
        raise ValueError(f"defaults=True needs a case with stride 1 and padding 0, not {c.stride} and {c.padding}")
    kwargs = {} if defaults else {"stride": c.stride, "padding": c.padding}
    outcome = sub.conv2d_backward(
        c.dout if dout is None else dout,
        c.x if x is None else x,
        c.weight if weight is None else weight,
        **kwargs,
    )
    got = check_gradient_tuple(outcome)
    c64 = c.as_float64()
    expected = ref.conv2d_backward(c64.dout, c64.x, c64.weight, stride=c.stride, padding=c.padding)
    scale = ref.conv2d_backward(np.abs(c64.dout), np.abs(c64.x), np.abs(c64.weight), stride=c.stride, padding=c.padding)
    for part in parts:
        i = GRADIENTS.index(part)
        check_array(outcome, expected[i], value=got[i], what=part, scale=scale[i], hints=conv_hints(ref, c64, part))
    return outcome


@graded("6.1", weight=1, public=True)
def test_conv_backward_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches a hand-computed example (gradients summed over positions)"""
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    # dbias = [4]; dweight = [[8, 12], [20, 24]]; dx = [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
    check_conv_backward(sub, ref, ConvBackwardCase(np.ones((1, 1, 2, 2)), x, np.ones((1, 1, 2, 2)), 1, 0))
    # stride 2, padding 1: the four 2x2 windows of the padded 5x5 input do not overlap
    check_conv_backward(sub, ref, ConvBackwardCase(np.ones((1, 1, 2, 2)), x, np.ones((1, 1, 2, 2)), 2, 1))


@graded("6.1", weight=2.5)
@given(case=conv_backward_cases(), data=st.data())
def test_conv_backward_dweight(
    sub: SubmissionProxy, ref: ModuleType, case: ConvBackwardCase, data: st.DataObject
) -> None:
    """dweight matches the definition for every stride and padding (float32; C, Fortran, strided, reversed arrays)"""
    dout, x, weight = (data.draw(maybe_views(value)) for value in (case.dout, case.x, case.weight))
    check_conv_backward(sub, ref, case, ("dweight",), dout=dout, x=x, weight=weight)


@graded("6.1", weight=2.5)
@given(case=conv_backward_cases(), data=st.data())
def test_conv_backward_dx(sub: SubmissionProxy, ref: ModuleType, case: ConvBackwardCase, data: st.DataObject) -> None:
    """dx matches the definition for every stride and padding (float32; C, Fortran, strided, reversed arrays)"""
    dout, x, weight = (data.draw(maybe_views(value)) for value in (case.dout, case.x, case.weight))
    check_conv_backward(sub, ref, case, ("dx",), dout=dout, x=x, weight=weight)


@graded("6.1", weight=1.5)
@settings(max_examples=10)  # a plain sum: fewer examples suffice
@given(case=conv_backward_cases(max_stride=2, max_padding=1))
def test_conv_backward_dbias(sub: SubmissionProxy, ref: ModuleType, case: ConvBackwardCase) -> None:
    """dbias is dout summed over the batch and every position"""
    check_conv_backward(sub, ref, case, ("dbias",))


@graded("6.1", weight=1)
def test_conv_backward_realistic_size(sub: SubmissionProxy, ref: ModuleType) -> None:
    """works on a realistic layer (2x3x12x11 input, four 3x3 filters; stride 1 and 2, padding 1, and the defaults)"""
    rng = np.random.default_rng(61)
    x, w = rng.standard_normal((2, 3, 12, 11)), rng.standard_normal((4, 3, 3, 3))
    check_conv_backward(sub, ref, ConvBackwardCase(rng.standard_normal((2, 4, 12, 11)), x, w, 1, 1))
    check_conv_backward(sub, ref, ConvBackwardCase(rng.standard_normal((2, 4, 6, 6)), x, w, 2, 1))
    check_conv_backward(sub, ref, ConvBackwardCase(rng.standard_normal((2, 4, 10, 9)), x, w, 1, 0), defaults=True)


@graded("6.1", weight=1)
def test_conv_backward_rejects_wrong_dout(sub: SubmissionProxy) -> None:
    """raises ValueError when dout does not have the layer's output shape"""
    x, w = np.ones((1, 1, 4, 4)), np.ones((2, 1, 3, 3))  # the output is 1x2x2x2
    fn = sub.conv2d_backward
    rng = np.random.default_rng(65)
    check_accepts(fn, rng.integers(-3, 4, (1, 2, 2, 2)).astype(float), x, w, stride=1, padding=0)
    check_accepts(fn, rng.integers(-3, 4, (1, 2, 2, 2)).astype(float), x, w, stride=2, padding=1)
    expect_error(fn, np.ones((1, 2, 4, 4)), x, w, because="the output is 1x2x2x2 without padding, not 1x2x4x4")
    expect_error(fn, np.ones((1, 2, 1, 1)), x, w, because="the output is 1x2x2x2, not 1x2x1x1")
    expect_error(fn, np.ones((1, 1, 2, 2)), x, w, because="there are 2 filters, so dout has 2 channels, not 1")
    expect_error(fn, np.ones((2, 2, 2, 2)), x, w, because="the batch has 1 example, not 2")
    expect_error(
        fn,
        np.ones((1, 2, 4, 4)),
        x,
        w,
        stride=2,
        padding=1,
        because="with stride 2 and padding 1 the output is 1x2x2x2 ((4 + 2 - 3) // 2 + 1 = 2), not 1x2x4x4",
    )


@graded("6.1", weight=0.5)
def test_conv_backward_does_not_modify_inputs(sub: SubmissionProxy) -> None:
    """leaves dout, x and weight unchanged"""
    rng = np.random.default_rng(62)
    x, w, dout = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((2, 3, 3, 3))
    check_no_mutation(sub.conv2d_backward(dout, x, w, stride=2, padding=1))


# ---------------------------------------------------------------------------------------------
# Task 6.2: locally_connected2d_backward
# ---------------------------------------------------------------------------------------------


def lc_hints(ref: ModuleType, c: LCBackwardCase, what: str) -> list[Hint]:
    """Classic locally_connected2d_backward mistakes in one gradient."""
    N, C_out, H_out, W_out = c.dout.shape
    grads = lambda: ref.locally_connected2d_backward(c.dout, c.x, c.weight, stride=c.stride)  # noqa: E731
    summed = (
        "your {g} is summed over the output positions, as for a convolution; a locally-connected layer has a "
        "SEPARATE {p} at each position (i, j), so {g}[i, j] gets only the contribution of position (i, j)."
    )
    if what == "dweight":
        return [
            Hint(
                "summed-over-positions",
                summed.format(g="dweight", p="filter bank"),
                lambda: np.broadcast_to(grads()[1].sum(axis=(0, 1)), c.weight.shape),
            ),
            Hint(
                "summed-over-positions",
                summed.format(g="dweight", p="filter bank"),
                lambda: grads()[1].sum(axis=(0, 1)),
            ),
            Hint(
                "grad-averaged",
                "your dweight is the right one divided by the batch size: sum over the batch, do not average.",
                lambda: grads()[1] / N,
            ),
        ]
    if what == "dbias":
        return [
            Hint("summed-over-positions", summed.format(g="dbias", p="bias"), lambda: grads()[2].sum(axis=(0, 1))),
            Hint(
                "summed-over-positions",
                summed.format(g="dbias", p="bias"),
                lambda: np.broadcast_to(grads()[2].sum(axis=(0, 1)), (H_out, W_out, C_out)),
            ),
            Hint(
                "dbias-layout",
                "dbias must have the bias's shape (H_out, W_out, C_out); yours is (C_out, H_out, W_out): "
                "transpose it (dout.sum(axis=0).transpose(1, 2, 0)).",
                lambda: c.dout.sum(axis=0),
            ),
            Hint(
                "grad-averaged",
                "your dbias is the right one divided by the batch size: sum over the batch, do not average.",
                lambda: grads()[2] / N,
            ),
        ]
    kernel = c.weight.shape[4:]
    return [
        Hint("dx-overwritten", OVERWRITTEN_TEXT, lambda: _overwritten_lc_dx(c)),
        *_window_overwrite_hints(c.dout, lambda i, j, o: c.weight[i, j, o], c.x.shape, kernel, c.stride, 0),
    ]


def _overwritten_lc_dx(c: LCBackwardCase) -> np.ndarray:
    """The locally-connected dx when each kernel offset's contribution is assigned (=) instead of added."""
    _, _, H_out, W_out = c.dout.shape
    kh, kw = c.weight.shape[4:]
    dx = np.zeros(c.x.shape)
    for m in range(kh):
        for q in range(kw):
            rows = slice(m, m + c.stride * (H_out - 1) + 1, c.stride)
            cols = slice(q, q + c.stride * (W_out - 1) + 1, c.stride)
            dx[:, :, rows, cols] = np.einsum("noij,ijoc->ncij", c.dout, c.weight[:, :, :, :, m, q])
    return dx


def check_lc_backward(
    sub: SubmissionProxy,
    ref: ModuleType,
    c: LCBackwardCase,
    parts: tuple[str, ...] = GRADIENTS,
    *,
    x: Any = None,
    dout: Any = None,
    weight: Any = None,
) -> Outcome:
    """Call ``locally_connected2d_backward`` and check the named gradients (``x``... : views to send)."""
    outcome = sub.locally_connected2d_backward(
        c.dout if dout is None else dout,
        c.x if x is None else x,
        c.weight if weight is None else weight,
        stride=c.stride,
    )
    got = check_gradient_tuple(outcome)
    c64 = c.as_float64()
    expected = ref.locally_connected2d_backward(c64.dout, c64.x, c64.weight, stride=c.stride)
    scale = ref.locally_connected2d_backward(np.abs(c64.dout), np.abs(c64.x), np.abs(c64.weight), stride=c.stride)
    for part in parts:
        i = GRADIENTS.index(part)
        check_array(outcome, expected[i], value=got[i], what=part, scale=scale[i], hints=lc_hints(ref, c64, part))
    return outcome


@graded("6.2", weight=1, public=True)
def test_lc_backward_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches a hand-computed example (one gradient per position, no sum over positions)"""
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    weight = np.ones((2, 2, 1, 1, 2, 2))
    dout = np.array([[[[1.0, 0.0], [0.0, 2.0]]]])
    # dweight[0, 0] = 1 * x[0:2, 0:2], dweight[1, 1] = 2 * x[1:3, 1:3], the others 0; dbias[i, j, 0] = dout[0, 0, i, j]
    check_lc_backward(sub, ref, LCBackwardCase(dout, x, weight, 1))


@graded("6.2", weight=2)
@given(case=lc_backward_cases(), data=st.data())
def test_lc_backward_dweight(sub: SubmissionProxy, ref: ModuleType, case: LCBackwardCase, data: st.DataObject) -> None:
    """dweight matches the definition for every stride (float32; C, Fortran, strided, reversed arrays)"""
    views = {name: data.draw(maybe_views(getattr(case, name))) for name in ("dout", "x", "weight")}
    check_lc_backward(sub, ref, case, ("dweight",), **views)


@graded("6.2", weight=2)
@given(case=lc_backward_cases(), data=st.data())
def test_lc_backward_dx(sub: SubmissionProxy, ref: ModuleType, case: LCBackwardCase, data: st.DataObject) -> None:
    """dx matches the definition for every stride (float32; C, Fortran, strided, reversed arrays)"""
    views = {name: data.draw(maybe_views(getattr(case, name))) for name in ("dout", "x", "weight")}
    check_lc_backward(sub, ref, case, ("dx",), **views)


@graded("6.2", weight=1)
@settings(max_examples=10)  # a plain sum: fewer examples suffice
@given(case=lc_backward_cases(max_stride=2))
def test_lc_backward_dbias(sub: SubmissionProxy, ref: ModuleType, case: LCBackwardCase) -> None:
    """dbias has shape (H_out, W_out, C_out): dout summed over the batch only"""
    check_lc_backward(sub, ref, case, ("dbias",))


def check_identity(
    sub: SubmissionProxy, ref: ModuleType, dout: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int
) -> None:
    """Tie a locally-connected layer to ``w``; its dweight summed over positions must be the conv's dweight."""
    H_out, W_out = dout.shape[2:]
    lc_weight, _ = ref.conv_as_locally_connected(w, None, (H_out, W_out))
    outcome = sub.locally_connected2d_backward(dout, x, lc_weight, stride=stride)
    dweight = check_gradient_tuple(outcome)[1]
    expected = ref.conv2d_backward(dout, x, w, stride=stride)[1]
    scale = ref.conv2d_backward(np.abs(dout), np.abs(x), np.abs(w), stride=stride)[1]
    if not isinstance(dweight, np.ndarray) or dweight.shape != lc_weight.shape:
        # The conv's own dweight (one filter bank, summed over positions) is the summing mistake.
        summed = isinstance(dweight, np.ndarray) and reproduces(dweight, expected, 1e-9 * (scale + scale.max()))
        raise outcome.fail(
            f"dweight should be an array of weight's shape {lc_weight.shape}; got {describe_value(dweight)}",
            hint=Hint(
                "summed-over-positions",
                "your dweight has the shape of ONE filter bank: a locally-connected layer has a separate filter bank "
                "at each position (i, j), and each gets its own gradient.",
                lambda: None,
            )
            if summed
            else None,
        )
    check_array(
        outcome,
        expected,
        value=dweight.sum(axis=(0, 1)),
        what="your dweight summed over the positions (axes 0 and 1), which should equal the convolution's dweight",
        scale=scale,
        hints=[
            Hint(
                "summed-over-positions",
                "your dweight seems to hold the summed gradient at EVERY position already, so summing it over "
                "the positions counts each contribution H_out * W_out times: keep only position (i, j)'s "
                "contribution in dweight[i, j].",
                lambda: expected * (H_out * W_out),
            ),
            Hint(
                "grad-averaged",
                "your dweight is the right one divided by the batch size: sum over the batch, do not average.",
                lambda: expected / x.shape[0],
            ),
        ],
    )


@graded("6.2", weight=1.5)
def test_lc_summed_gradient_identity(sub: SubmissionProxy, ref: ModuleType) -> None:
    """with tied weights, dweight summed over positions equals the convolution's dweight"""
    rng = np.random.default_rng(63)
    x, w, dout = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 2, 2)), rng.standard_normal((2, 3, 4, 4))
    check_identity(sub, ref, dout, x, w, 1)
    x, w, dout = rng.standard_normal((1, 3, 7, 6)), rng.standard_normal((2, 3, 3, 2)), rng.standard_normal((1, 2, 3, 3))
    check_identity(sub, ref, dout, x, w, 2)


@graded("6.2", weight=1)
def test_lc_backward_rejects_wrong_dout(sub: SubmissionProxy) -> None:
    """raises ValueError when dout does not have the layer's output shape"""
    x, w = np.ones((1, 1, 4, 4)), np.ones((2, 2, 2, 1, 3, 3))  # the output is 1x2x2x2
    fn = sub.locally_connected2d_backward
    rng = np.random.default_rng(66)
    check_accepts(fn, rng.integers(-3, 4, (1, 2, 2, 2)).astype(float), np.arange(16.0).reshape(1, 1, 4, 4), w)
    expect_error(fn, np.ones((1, 2, 4, 4)), x, w, because="the output is 1x2x2x2, not 1x2x4x4")
    expect_error(fn, np.ones((1, 2, 1, 1)), x, w, because="the output is 1x2x2x2, not 1x2x1x1")
    expect_error(fn, np.ones((1, 1, 2, 2)), x, w, because="there are 2 output channels, not 1")
    expect_error(fn, np.ones((2, 2, 2, 2)), x, w, because="the batch has 1 example, not 2")
    expect_error(
        fn, np.ones((1, 2, 3, 3)), x, np.ones((3, 3, 2, 1, 3, 3)), because="a 4x4 input has 2x2 positions, not 3x3"
    )
    # dout matches weight's one row of positions, which numpy would broadcast over the input's two.
    expect_error(
        fn, np.ones((1, 2, 1, 2)), x, np.ones((1, 2, 2, 1, 3, 3)), because="a 4x4 input has 2x2 positions, not 1x2"
    )


@graded("6.2", weight=0.5)
def test_lc_backward_does_not_modify_inputs(sub: SubmissionProxy) -> None:
    """leaves dout, x and weight unchanged"""
    rng = np.random.default_rng(64)
    x, w, dout = (
        rng.standard_normal((2, 2, 5, 5)),
        rng.standard_normal((2, 2, 3, 2, 2, 2)),
        rng.standard_normal((2, 3, 2, 2)),
    )
    check_no_mutation(sub.locally_connected2d_backward(dout, x, w, stride=3))
