"""Part 3: locally_connected2d (Task 3.1) and conv_as_locally_connected (Task 3.2)."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks import (
    Hint,
    Outcome,
    SubmissionProxy,
    check_accepts,
    check_array,
    check_no_mutation,
    expect_error,
    plain,
    reproduces,
)
from autograder.feedback import describe_value, matching_hint
from autograder.hidden_tests.strategies import as_dtype, draw_array, dtypes, layout_view, maybe_views

graded = pytest.mark.graded

# ---------------------------------------------------------------------------------------------
# Strategies (Part 3 only)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LCCase:
    """Arguments of a locally-connected layer."""

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    stride: int

    @property
    def kwargs(self) -> dict[str, object]:
        """The optional arguments, passed by keyword as the contract says."""
        return {"bias": self.bias, "stride": self.stride}

    def as_float64(self) -> LCCase:
        """The same case in float64 (the grader computes expected values in float64)."""
        return LCCase(
            self.x.astype(np.float64),
            self.weight.astype(np.float64),
            as_dtype(self.bias, np.dtype(np.float64)),
            self.stride,
        )


@st.composite
def lc_cases(draw: st.DrawFn, *, max_side: int = 6, max_stride: int = 3, bias: bool | None = None) -> LCCase:
    """A batch, one filter bank per output position, optional biases and a stride."""
    N, C_in, C_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kh, kw = draw(st.integers(1, min(3, H))), draw(st.integers(1, min(3, W)))
    stride = draw(st.integers(1, max_stride))
    H_out, W_out = (H - kh) // stride + 1, (W - kw) // stride + 1
    with_bias = draw(st.booleans()) if bias is None else bias
    x, weight = draw_array(draw, (N, C_in, H, W)), draw_array(draw, (H_out, W_out, C_out, C_in, kh, kw))
    b = draw_array(draw, (H_out, W_out, C_out)) if with_bias else None
    dtype = draw(dtypes())
    return LCCase(x.astype(dtype), weight.astype(dtype), as_dtype(b, dtype), stride)


@dataclass(frozen=True)
class TieCase:
    """Arguments of conv_as_locally_connected."""

    weight: np.ndarray
    bias: np.ndarray | None
    output_size: int | tuple[int, int]

    @property
    def output_pair(self) -> tuple[int, int]:
        """``(H_out, W_out)``."""
        size = self.output_size
        return (size, size) if isinstance(size, int) else size


@st.composite
def tie_cases(draw: st.DrawFn, *, pair: bool | None = None) -> TieCase:
    """Conv filters, optional biases and an output size (an int or a pair)."""
    C_out, C_in = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    weight = draw_array(draw, (C_out, C_in, kh, kw))
    bias = draw_array(draw, (C_out,)) if draw(st.booleans()) else None
    as_pair = draw(st.booleans()) if pair is None else pair
    size = (draw(st.integers(1, 4)), draw(st.integers(1, 4))) if as_pair else draw(st.integers(1, 4))
    dtype = draw(dtypes())
    return TieCase(weight.astype(dtype), as_dtype(bias, dtype), size)


# ---------------------------------------------------------------------------------------------
# Task 3.1: locally_connected2d
# ---------------------------------------------------------------------------------------------


def lc_hints(ref: ModuleType, c: LCCase) -> list[Hint]:
    """Classic locally-connected mistakes for this (float64) case, each only where it changes the answer."""
    x, w, b, s = c.x, c.weight, c.bias, c.stride
    H_out, W_out, C_out, _, kh, kw = w.shape
    layer = lambda weight, bias=b, stride=s, x=x: ref.locally_connected2d(x, weight, bias, stride=stride)  # noqa: E731
    hints = [
        Hint(
            "lc-output-layout",
            "the output has shape (N, C_out, H_out, W_out): channels before positions.",
            lambda: layer(w).transpose(0, 2, 3, 1),
        ),
        Hint(
            "flipped-kernel",
            "your output equals the result with each kernel flipped. As in a convolution, weight[i, j, o, c, m, n] "
            "multiplies x[:, c, i*stride + m, j*stride + n], with no flip.",
            lambda: layer(w[..., ::-1, ::-1]),
        ),
        Hint(
            "transposed-kernel",
            "your output equals the result with each kernel transposed: weight[..., m, n] pairs with "
            "x[..., i*stride + m, j*stride + n] (m rows, n columns).",
            lambda: layer(w.swapaxes(4, 5)),
        ),
        Hint(
            "lc-positions-transposed",
            "weight[i, j] is the filter bank of output row i, column j; you seem to use weight[j, i].",
            lambda: layer(w.swapaxes(0, 1), None if b is None else b.swapaxes(0, 1)),
        ),
        Hint(
            "lc-positions-transposed",
            "weight[i, j] is the filter bank of output row i, column j; you seem to use weight[j, i].",
            lambda: layer(w.swapaxes(0, 1)),
        ),
        Hint(
            "lc-channel-order",
            "weight[i, j, o, c] connects input channel c to output channel o; you seem to use weight[i, j, c, o].",
            lambda: layer(w.swapaxes(2, 3)),
        ),
    ]
    if b is not None:
        no_bias = lambda: layer(w, None)  # noqa: E731
        hints += [
            Hint(
                "missing-bias",
                "your output equals the result without the bias: add bias[i, j, o] to out[:, o, i, j].",
                no_bias,
            ),
            Hint(
                "lc-bias-layout",
                "bias has shape (H_out, W_out, C_out) and bias[i, j, o] goes to out[:, o, i, j]. Reshaping it to "
                "(C_out, H_out, W_out) scrambles it; move its axes instead (bias.transpose(2, 0, 1)).",
                lambda: no_bias() + b.reshape(C_out, H_out, W_out)[None],
            ),
            Hint(
                "lc-bias-per-channel",
                "each output position has its own biases: add bias[i, j, o] at position (i, j), not bias[0, 0, o] "
                "everywhere.",
                lambda: no_bias() + b[0, 0][None, :, None, None],
            ),
        ]
    if s > 1:
        hints.append(
            Hint(
                "stride-ignored",
                "position (i, j) reads the window starting at x[..., i*stride, j*stride]; you seem to start it at "
                "x[..., i, j] (the stride is ignored).",
                lambda: layer(w, stride=1, x=x[:, :, : H_out + kh - 1, : W_out + kw - 1]),
            )
        )
    return hints


def check_lc(
    sub: SubmissionProxy,
    ref: ModuleType,
    c: LCCase,
    *,
    x: object = None,
    weight: object = None,
    bias: object = None,
) -> None:
    """Call the student's locally_connected2d on a case and check it against the reference.

    ``x``, ``weight`` and ``bias``, where given, are sent instead of the case's arrays (the same values
    in another memory layout).
    """
    kwargs = {**c.kwargs, "bias": c.bias if bias is None else bias}
    outcome = sub.locally_connected2d(c.x if x is None else x, c.weight if weight is None else weight, **kwargs)
    c64 = c.as_float64()
    expected = ref.locally_connected2d(c64.x, c64.weight, c64.bias, stride=c.stride)
    scale = ref.locally_connected2d(
        np.abs(c64.x), np.abs(c64.weight), None if c64.bias is None else np.abs(c64.bias), stride=c.stride
    )
    check_array(outcome, expected, scale=scale, hints=lc_hints(ref, c64))


@graded("3.1", weight=1, public=True)
def test_lc_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches a hand-computed example (a different filter at each position)"""
    x = np.arange(9.0).reshape(1, 1, 3, 3)  # [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    weight = np.zeros((2, 2, 1, 1, 2, 2))
    weight[0, 0, 0, 0] = [[1, 0], [0, 0]]  # picks x[0, 0] = 0
    weight[0, 1, 0, 0] = [[0, 1], [0, 0]]  # picks x[0, 2] = 2
    weight[1, 0, 0, 0] = [[0, 0], [2, 0]]  # 2 * x[2, 0] = 12
    weight[1, 1, 0, 0] = [[1, 1], [1, -1]]  # 4 + 5 + 7 - 8 = 8
    bias = np.array([10.0, 20.0, 30.0, 40.0]).reshape(2, 2, 1)  # bias[i, j, 0]
    check_lc(sub, ref, LCCase(x, weight, bias, 1))  # [[0 + 10, 2 + 20], [12 + 30, 8 + 40]] = [[10, 22], [42, 48]]


@graded("3.1", weight=1, public=True)
def test_lc_hand_example_stride(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches a hand-computed example with stride 2"""
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    weight = np.zeros((2, 2, 1, 1, 3, 3))
    weight[:, :, 0, 0, 0, 0] = [[1, 2], [3, 4]]  # position (i, j) scales the window's top-left x[2i, 2j]
    check_lc(sub, ref, LCCase(x, weight, None, 2))  # [[1*0, 2*2], [3*10, 4*12]] = [[0, 4], [30, 48]]


@graded("3.1", weight=2)
@given(case=lc_cases(max_stride=1))
def test_lc_channels_and_bias(sub: SubmissionProxy, ref: ModuleType, case: LCCase) -> None:
    """matches the definition with several channels and filters (stride 1)"""
    check_lc(sub, ref, case)


@graded("3.1", weight=3)
@given(case=lc_cases(), data=st.data())
def test_lc_stride(sub: SubmissionProxy, ref: ModuleType, case: LCCase, data: st.DataObject) -> None:
    """matches the definition for every stride and kernel shape (float32; C, Fortran, strided, reversed arrays)"""
    views = {name: data.draw(maybe_views(getattr(case, name))) for name in ("x", "weight", "bias")}
    check_lc(sub, ref, case, **views)


@graded("3.1", weight=1)
def test_lc_realistic_size(sub: SubmissionProxy, ref: ModuleType) -> None:
    """works on realistic layers (e.g. a 2x3x10x9 input, 3x2 kernels, stride 2)"""
    rng = np.random.default_rng(31)
    for shape, (C_out, kh, kw), stride, layout in (
        ((2, 3, 10, 9), (3, 3, 2), 2, "fortran"),
        ((3, 2, 9, 12), (4, 3, 3), 1, "c"),
    ):
        _, C_in, H, W = shape
        H_out, W_out = (H - kh) // stride + 1, (W - kw) // stride + 1
        x = rng.standard_normal(shape)
        weight = rng.standard_normal((H_out, W_out, C_out, C_in, kh, kw))
        bias = rng.standard_normal((H_out, W_out, C_out))
        check_lc(sub, ref, LCCase(x, weight, bias, stride), x=layout_view(x, layout))


@graded("3.1", weight=1)
def test_lc_rejects_wrong_positions(sub: SubmissionProxy) -> None:
    """raises ValueError when weight's positions do not match the input"""
    x = np.ones((1, 1, 5, 5))
    f = sub.locally_connected2d
    check_accepts(f, np.arange(25.0).reshape(1, 1, 5, 5), np.arange(81.0).reshape(3, 3, 1, 1, 3, 3), bias=None)
    check_accepts(f, np.arange(25.0).reshape(1, 1, 5, 5), np.ones((2, 2, 1, 1, 3, 3)), bias=None, stride=2)
    expect_error(f, x, np.ones((2, 2, 1, 1, 3, 3)), because="a 5x5 input and 3x3 kernels give 3x3 positions, not 2x2")
    expect_error(f, x, np.ones((3, 3, 1, 1, 3, 3)), stride=2, because="with stride 2 there are 2x2 positions, not 3x3")
    expect_error(f, x, np.ones((3, 2, 1, 1, 3, 3)), because="a 5x5 input and 3x3 kernels give 3x3 positions, not 3x2")
    # One position along an axis would broadcast silently in numpy (einsum, *): only an explicit check refuses it.
    expect_error(f, x, np.ones((1, 3, 1, 1, 3, 3)), because="a 5x5 input and 3x3 kernels give 3x3 positions, not 1x3")
    expect_error(f, x, np.ones((3, 1, 1, 1, 3, 3)), because="a 5x5 input and 3x3 kernels give 3x3 positions, not 3x1")
    expect_error(f, np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1, 3, 3)), because="a 3x3 kernel does not fit in 2x2")
    expect_error(
        f,
        x,
        np.ones((1, 1, 3, 3)),
        because="weight is 4-D (a conv weight); it must be (H_out, W_out, C_out, C_in, kh, kw)",
    )


@graded("3.1", weight=1)
def test_lc_rejects_channel_and_bias_mismatch(sub: SubmissionProxy) -> None:
    """raises ValueError for channel or bias mismatches"""
    f = sub.locally_connected2d
    x, weight = np.ones((1, 2, 4, 4)), np.ones((2, 2, 3, 2, 3, 3))
    check_accepts(f, np.arange(32.0).reshape(1, 2, 4, 4), weight, bias=np.arange(12.0).reshape(2, 2, 3))
    expect_error(f, x, np.ones((2, 2, 3, 1, 3, 3)), because="weight expects 1 input channel but x has 2")
    expect_error(f, np.ones((1, 3, 4, 4)), weight, because="weight expects 2 input channels but x has 3")
    expect_error(
        f, x, weight, bias=np.ones((2, 2, 1)), because="bias must have shape (2, 2, 3): one per position and filter"
    )
    expect_error(f, x, weight, bias=np.ones(3), because="bias must have shape (2, 2, 3), not a conv layer's (3,)")
    expect_error(
        f, x, weight, bias=np.ones((3, 2, 2)), because="bias must have shape (H_out, W_out, C_out) = (2, 2, 3)"
    )


@graded("3.1", weight=1)
def test_lc_does_not_modify_inputs(sub: SubmissionProxy) -> None:
    """leaves x, weight and bias unchanged"""
    rng = np.random.default_rng(32)
    outcome = sub.locally_connected2d(
        rng.standard_normal((2, 2, 5, 4)),
        rng.standard_normal((3, 2, 3, 2, 3, 3)),
        bias=rng.standard_normal((3, 2, 3)),
        stride=1,
    )
    check_no_mutation(outcome)


# ---------------------------------------------------------------------------------------------
# Task 3.2: conv_as_locally_connected
# ---------------------------------------------------------------------------------------------


def _returned_pair(outcome: Outcome) -> tuple[Any, Any]:
    value = outcome.value
    if type(value) not in (tuple, list) or len(value) != 2:
        raise outcome.fail(f"the result should be a pair (lc_weight, lc_bias); got {describe_value(value)}")
    return value[0], value[1]


def tie_weight_hints(weight: np.ndarray, H_out: int, W_out: int) -> list[Hint]:
    """Wrong lc_weight layouts, replayed."""
    hints = [
        Hint(
            "lc-weight-layout",
            "lc_weight has the positions first: shape (H_out, W_out, C_out, C_in, kh, kw), so that lc_weight[i, j] "
            "is the conv weight.",
            lambda: np.broadcast_to(weight[..., None, None], weight.shape + (H_out, W_out)),
        ),
    ]
    if H_out != W_out:
        hints.append(
            Hint(
                "output-size-pair-swapped",
                "output_size is (H_out, W_out): rows first, then columns.",
                lambda: np.broadcast_to(weight, (W_out, H_out) + weight.shape),
            )
        )
    return hints


def tie_bias_hints(bias: np.ndarray, H_out: int, W_out: int) -> list[Hint]:
    """Wrong lc_bias layouts, replayed."""
    hints = [
        Hint(
            "lc-bias-layout",
            "lc_bias has shape (H_out, W_out, C_out), as locally_connected2d expects: lc_bias[i, j] is the conv bias.",
            lambda: np.broadcast_to(bias[:, None, None], bias.shape + (H_out, W_out)),
        ),
    ]
    if H_out != W_out:
        hints.append(
            Hint(
                "output-size-pair-swapped",
                "output_size is (H_out, W_out): rows first, then columns.",
                lambda: np.broadcast_to(bias, (W_out, H_out) + bias.shape),
            )
        )
    return hints


def check_tied(sub: SubmissionProxy, c: TieCase, *, weight: object = None, bias: object = None) -> None:
    """Check both returned arrays of conv_as_locally_connected on a case (``weight``, ``bias``: views to send)."""
    outcome = sub.conv_as_locally_connected(
        c.weight if weight is None else weight, c.bias if bias is None else bias, c.output_size
    )
    got_weight, got_bias = _returned_pair(outcome)
    H_out, W_out = c.output_pair
    weight = c.weight.astype(np.float64)
    expected = np.broadcast_to(weight, (H_out, W_out) + weight.shape)
    check_array(
        outcome,
        expected,
        value=got_weight,
        what="lc_weight",
        scale=np.abs(expected),
        hints=tie_weight_hints(weight, H_out, W_out),
    )
    if c.bias is None:
        if got_bias is not None:
            zeros = isinstance(got_bias, np.ndarray) and not np.any(got_bias)
            hint = Hint(
                "bias-none",
                "a layer without biases stays without biases: return None for lc_bias, not an array of zeros.",
                lambda: None,
            )
            raise outcome.fail(
                f"expected lc_bias: None (bias is None)\ngot: {describe_value(got_bias)}", hint=hint if zeros else None
            )
        return
    bias = c.bias.astype(np.float64)
    expected_bias = np.broadcast_to(bias, (H_out, W_out) + bias.shape)
    check_array(
        outcome,
        expected_bias,
        value=got_bias,
        what="lc_bias",
        scale=np.abs(expected_bias),
        hints=tie_bias_hints(bias, H_out, W_out),
    )


@graded("3.2", weight=1, public=True)
def test_tie_hand_example(sub: SubmissionProxy) -> None:
    """copies one 2x2 filter and its bias to each of 2x3 positions"""
    check_tied(sub, TieCase(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), np.array([0.5]), (2, 3)))


@graded("3.2", weight=2)
@given(case=tie_cases(), data=st.data())
def test_tie_matches_definition(sub: SubmissionProxy, case: TieCase, data: st.DataObject) -> None:
    """gives lc_weight[i, j] == weight and lc_bias[i, j] == bias at every position (float32; any memory layout)"""
    check_tied(sub, case, weight=data.draw(maybe_views(case.weight)), bias=data.draw(maybe_views(case.bias)))


@graded("3.2", weight=1)
def test_tie_without_bias(sub: SubmissionProxy) -> None:
    """returns None for lc_bias when bias is None"""
    rng = np.random.default_rng(33)
    check_tied(sub, TieCase(rng.standard_normal((2, 1, 2, 2)), None, 3))


@graded("3.2", weight=1)
@given(case=tie_cases(pair=True))
def test_tie_output_size_pair(sub: SubmissionProxy, case: TieCase) -> None:
    """accepts output_size as a pair (H_out, W_out)"""
    check_tied(sub, case)


@graded("3.2", weight=2)
def test_tie_equals_convolution(sub: SubmissionProxy, ref: ModuleType) -> None:
    """gives weights with which locally_connected2d equals conv2d_layer"""
    rng = np.random.default_rng(34)
    for x_shape, w_shape, stride, with_bias in (
        ((2, 3, 6, 7), (4, 3, 3, 2), 1, True),
        ((1, 2, 9, 8), (3, 2, 3, 3), 2, False),
    ):
        x, weight = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        bias = rng.standard_normal(w_shape[0]) if with_bias else None
        conv = ref.conv2d_layer(x, weight, bias, stride=stride)
        H_out, W_out = conv.shape[2:]
        outcome = sub.conv_as_locally_connected(weight, bias, (H_out, W_out))
        got_weight, got_bias = (plain(v) for v in _returned_pair(outcome))
        what = "locally_connected2d(x, lc_weight, lc_bias, stride)"
        arrays_ok = isinstance(got_weight, np.ndarray) and (got_bias is None or isinstance(got_bias, np.ndarray))
        wanted = (H_out, W_out, *weight.shape)
        if arrays_ok and got_weight.shape != wanted:
            hints = tie_weight_hints(weight, H_out, W_out)
            hint = matching_hint(hints, got_weight, lambda got, wrong: reproduces(got, wrong, 1e-9))
            raise outcome.fail(
                f"lc_weight should have shape {wanted}, as locally_connected2d expects; got shape {got_weight.shape}",
                hint=hint,
            )
        try:
            if not arrays_ok:
                raise ValueError(f"lc_weight and lc_bias must be arrays; got {type(got_weight).__name__}")
            layer = ref.locally_connected2d(x, got_weight.astype(np.float64), got_bias, stride=stride)
        except ValueError as problem:
            raise outcome.fail(
                f"with x of shape {x_shape} and stride {stride}, {what} should equal conv2d_layer(x, weight, bias, "
                f"stride) but it cannot be computed with your arrays: {problem}"
            ) from None
        scale = ref.conv2d_layer(np.abs(x), np.abs(weight), None if bias is None else np.abs(bias), stride=stride)
        check_array(outcome, conv, value=layer, what=f"{what} (= conv2d_layer(x, weight, bias, stride))", scale=scale)


@graded("3.2", weight=1)
def test_tie_does_not_modify_inputs(sub: SubmissionProxy) -> None:
    """leaves weight and bias unchanged"""
    rng = np.random.default_rng(35)
    check_no_mutation(sub.conv_as_locally_connected(rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3), (2, 4)))
