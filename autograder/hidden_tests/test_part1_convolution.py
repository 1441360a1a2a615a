"""Part 1: conv2d (Task 1.1) and conv2d_layer (Task 1.2)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks import (
    Hint,
    SubmissionProxy,
    check_accepts,
    check_array,
    check_no_mutation,
    expect_error,
    plain,
    reproduces,
)
from autograder.hidden_tests.strategies import ConvCase, LayerCase, conv_cases, layer_cases, layout_view, maybe_views

graded = pytest.mark.graded

FLIP_HINT = (
    "your output equals the convolution with the kernel flipped. The lecture's formula is a "
    "cross-correlation: out[i, j] = sum kernel[m, n] * image[i + m, j + n], with no flip."
)
TRANSPOSE_HINT = (
    "your output equals the result with the kernel transposed: kernel[m, n] pairs with image[i + m, j + n] "
    "(m rows, n columns)."
)


SWAPPED_SIZE_HINT = (
    "your output has the height and width swapped: it has (H + 2p - kh) // s + 1 rows, from the height of the "
    "image and of the kernel, and (W + 2p - kw) // s + 1 columns, from the widths."
)
SQUARE_KERNEL_HINT = (
    "your output is what a square kernel would give: you seem to use the kernel's height kh for its width too "
    "(or the width for the height). A kernel has shape (kh, kw) and the two can differ."
)


def off_the_edge(
    compute: Callable[[np.ndarray], np.ndarray], x: np.ndarray, rows: int, cols: int, *, stride: int = 1
) -> np.ndarray:
    """The formula at ``rows x cols`` output positions, NaN where the window runs off the input.

    A submission that computes the wrong number of positions reads past the input's bottom or right
    edge; what it finds there depends on its code, so those entries are left undetermined (NaN: the
    input is extended with NaN, which spreads to every window that touches it).

    Args:
        compute: the valid convolution of an input (the last two axes are rows and columns).
        x: the input, already zero-padded if the layer pads.
        rows: output rows wanted.
        cols: output columns wanted.
        stride: the layer's stride (how far past the edge the last windows reach).

    Returns:
        The ``(..., rows, cols)`` answer of the mistake.
    """
    extra = ((0, 0),) * (x.ndim - 2) + ((0, stride * rows + x.shape[-2]), (0, stride * cols + x.shape[-1]))
    return compute(np.pad(x, extra, constant_values=np.nan))[..., :rows, :cols]


def conv2d_hints(ref: ModuleType, image: np.ndarray, kernel: np.ndarray) -> list[Hint]:
    """Classic conv2d mistakes for this input, each replayed (a hint is named only when its values match)."""
    (H, W), (kh, kw) = image.shape, kernel.shape
    valid = lambda: ref.conv2d(image, kernel)  # noqa: E731
    full_image = lambda: np.pad(image, ((kh - 1, kh - 1), (kw - 1, kw - 1)))  # noqa: E731
    same = "your output has the input's size ('same'); use only positions where the kernel fits (H - k + 1)."

    def top_left() -> np.ndarray:  # np.zeros(image.shape), filled at the valid positions only
        out = np.zeros((H, W))
        out[: H - kh + 1, : W - kw + 1] = valid()
        return out

    hints = [
        Hint("flipped-kernel", FLIP_HINT, lambda: ref.conv2d(image, kernel[::-1, ::-1])),
        Hint("transposed-kernel", TRANSPOSE_HINT, lambda: ref.conv2d(image, kernel.T)),
        Hint(
            "output-size-off-by-one",
            "the output has one row/column too few: a kernel of size k fits at H - k + 1 positions, not H - k.",
            lambda: valid()[: H - kh, : W - kw],
        ),
        Hint(
            "full-output",
            "your output is a 'full' convolution (size H + k - 1); use only positions where the kernel fits.",
            lambda: ref.conv2d(full_image(), kernel),
        ),
        Hint(
            "full-output",
            "your output is a 'full' convolution (size H + k - 1) with the kernel flipped; use only positions where "
            "the kernel fits, and do not flip it.",
            lambda: ref.conv2d(full_image(), kernel[::-1, ::-1]),
        ),
        Hint(
            "same-output",
            same,
            lambda: ref.conv2d(np.pad(image, ((kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2))), kernel),
        ),
        Hint(
            "same-output",
            same,
            lambda: ref.conv2d(np.pad(image, (((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2))), kernel),
        ),
        Hint("same-output", same, top_left),
    ]
    if H - kh != W - kw:
        hints.append(
            Hint(
                "output-size-swapped",
                SWAPPED_SIZE_HINT,
                lambda: off_the_edge(lambda im: ref.conv2d(im, kernel), image, W - kw + 1, H - kh + 1),
            )
        )
    if kh < kw:
        hints.append(Hint("square-kernel", SQUARE_KERNEL_HINT, lambda: ref.conv2d(image, kernel[:, :kh])))
    if kw < kh:
        hints.append(Hint("square-kernel", SQUARE_KERNEL_HINT, lambda: ref.conv2d(image, kernel[:kw, :])))
    return hints


def conv2d_scale(ref: ModuleType, image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Per output entry, the sum of |terms|: the tolerance is relative to it."""
    return ref.conv2d(np.abs(image).astype(np.float64), np.abs(kernel).astype(np.float64))


def _check_conv2d(sub: SubmissionProxy, ref: ModuleType, image: object, kernel: object) -> None:
    outcome = sub.conv2d(image, kernel)
    img, ker = plain(image).astype(np.float64), plain(kernel).astype(np.float64)
    check_array(outcome, ref.conv2d(img, ker), scale=conv2d_scale(ref, img, ker), hints=conv2d_hints(ref, img, ker))


@graded("1.1", weight=1, public=True)
def test_conv2d_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches a hand-computed example (no kernel flip)"""
    image = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    kernel = np.array([[1.0, 0.0], [0.0, -1.0]])
    _check_conv2d(sub, ref, image, kernel)


@graded("1.1", weight=1, public=True)
def test_conv2d_rectangular_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """handles a rectangular image and kernel"""
    image = np.arange(20.0).reshape(4, 5)
    kernel = np.array([[1.0, 2.0, 0.0], [0.0, -1.0, 1.0]])
    _check_conv2d(sub, ref, image, kernel)


@graded("1.1", weight=1)
def test_conv2d_sobel_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """applies a Sobel edge filter (a square kernel that is neither symmetric nor antisymmetric)"""
    image = np.add.outer(np.arange(5.0) ** 2, 3 * np.arange(6.0))
    sobel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    _check_conv2d(sub, ref, image, sobel)
    _check_conv2d(sub, ref, image, sobel.T + np.eye(3))


@graded("1.1", weight=3)
@given(case=conv_cases(), data=st.data())
def test_conv2d_matches_reference(sub: SubmissionProxy, ref: ModuleType, case: ConvCase, data: st.DataObject) -> None:
    """matches the definition on generated images and kernels (float32, views included)"""
    _check_conv2d(sub, ref, data.draw(maybe_views(case.image)), data.draw(maybe_views(case.kernel)))


@graded("1.1", weight=1)
def test_conv2d_larger_input(sub: SubmissionProxy, ref: ModuleType) -> None:
    """works on a larger image (40x50 with a 5x3 kernel)"""
    rng = np.random.default_rng(11)
    _check_conv2d(sub, ref, rng.standard_normal((40, 50)), rng.standard_normal((5, 3)))


@graded("1.1", weight=1)
def test_conv2d_rejects_bad_input(sub: SubmissionProxy) -> None:
    """raises ValueError for a kernel that does not fit or input that is not 2-D"""
    image = np.arange(9.0).reshape(3, 3)
    check_accepts(sub.conv2d, image, np.array([[1.0, -1.0, 2.0]]))  # a 1x3 kernel just fits: a 3x1 output
    check_accepts(sub.conv2d, image, np.arange(9.0).reshape(3, 3)[::-1])  # a kernel as large as the image: 1x1
    expect_error(sub.conv2d, np.ones((3, 3)), np.ones((4, 2)), because="the 4x2 kernel is taller than the 3x3 image")
    expect_error(sub.conv2d, np.ones((3, 3)), np.ones((2, 4)), because="the 2x4 kernel is wider than the 3x3 image")
    # Larger on both axes: scipy.signal.correlate2d swaps the two operands here instead of refusing.
    expect_error(sub.conv2d, image, np.ones((4, 5)), because="the 4x5 kernel is larger than the 3x3 image")
    expect_error(sub.conv2d, np.ones((2, 3, 3)), np.ones((2, 2)), because="the image is 3-D, not 2-D")
    expect_error(sub.conv2d, np.ones((3, 3)), np.ones(2), because="the kernel is 1-D, not 2-D")


@graded("1.1", weight=1)
def test_conv2d_does_not_modify_inputs(sub: SubmissionProxy) -> None:
    """leaves its input arrays unchanged"""
    rng = np.random.default_rng(12)
    check_no_mutation(sub.conv2d(rng.standard_normal((6, 5)), rng.standard_normal((3, 2))))


# ---------------------------------------------------------------------------------------------
# Task 1.2: conv2d_layer
# ---------------------------------------------------------------------------------------------


def _one_side_padded(ref: ModuleType, c: LayerCase, side: str) -> np.ndarray:
    p = c.padding
    pad = ((p, 0), (p, 0)) if side == "before" else ((0, p), (0, p))
    x = np.pad(c.x, ((0, 0), (0, 0), *pad))
    return ref.conv2d_layer(x, c.weight, c.bias, stride=c.stride, padding=0)


def layer_hints(ref: ModuleType, c: LayerCase) -> list[Hint]:
    """Classic conv2d_layer mistakes for this case, each replayed (only where it changes the answer)."""
    s, p = c.stride, c.padding
    _, _, H, W = c.x.shape
    _, _, kh, kw = c.weight.shape
    H_out, W_out = (H + 2 * p - kh) // s + 1, (W + 2 * p - kw) // s + 1
    layer = lambda weight=c.weight, bias=c.bias, stride=s: ref.conv2d_layer(  # noqa: E731
        c.x, weight, bias, stride=stride, padding=p
    )
    padded = np.pad(c.x, ((0, 0), (0, 0), (p, p), (p, p)))

    def positions(rows: int, cols: int) -> np.ndarray:
        return off_the_edge(lambda xp: ref.conv2d_layer(xp, c.weight, c.bias, stride=s), padded, rows, cols, stride=s)

    hints = [
        Hint("flipped-kernel", FLIP_HINT, lambda: layer(c.weight[..., ::-1, ::-1])),
        Hint("transposed-kernel", TRANSPOSE_HINT, lambda: layer(c.weight.swapaxes(2, 3))),
    ]
    if c.bias is not None:
        hints.append(
            Hint(
                "missing-bias",
                "your output equals the result without the bias: add bias[o] to every position of output channel o.",
                lambda: layer(bias=None),
            )
        )
    if p:
        hints += [
            Hint(
                "padding-one-side",
                "you padded only one side; padding adds p zeros on all four sides.",
                lambda: _one_side_padded(ref, c, "before"),
            ),
            Hint(
                "padding-one-side",
                "you padded only one side; padding adds p zeros on all four sides.",
                lambda: _one_side_padded(ref, c, "after"),
            ),
        ]
    if s > 1:
        hints += [
            Hint(
                "stride-one-axis",
                "the stride seems applied along the rows only; it applies along both axes.",
                lambda: layer(stride=1)[:, :, ::s, :],
            ),
            Hint(
                "stride-one-axis",
                "the stride seems applied along the columns only; it applies along both axes.",
                lambda: layer(stride=1)[:, :, :, ::s],
            ),
            Hint(
                "output-size-ceil",
                "your output is one larger than (H + 2p - kh) // s + 1: the division rounds down.",
                lambda: positions(-(-(H + 2 * p - kh) // s) + 1, -(-(W + 2 * p - kw) // s) + 1),
            ),
        ]
    hints.append(
        Hint(
            "output-size-off-by-one",
            "the output size is (H + 2p - kh) // s + 1 (you may have missed the + 1).",
            lambda: layer()[:, :, : H_out - 1, : W_out - 1],
        )
    )
    if H_out != W_out:
        hints.append(Hint("output-size-swapped", SWAPPED_SIZE_HINT, lambda: positions(W_out, H_out)))
    if kh < kw:
        hints.append(Hint("square-kernel", SQUARE_KERNEL_HINT, lambda: layer(c.weight[..., :kh])))
    if kw < kh:
        hints.append(Hint("square-kernel", SQUARE_KERNEL_HINT, lambda: layer(c.weight[..., :kw, :])))
    return hints


def check_layer(
    sub: SubmissionProxy,
    ref: ModuleType,
    c: LayerCase,
    *,
    function: str = "conv2d_layer",
    x: object = None,
    weight: object = None,
    bias: object = None,
    defaults: bool = False,
) -> None:
    """Call ``function`` (conv2d_layer or conv2d_fast) on a case and check it against the reference.

    ``x``, ``weight`` and ``bias``, where given, are what is sent instead of the case's arrays: the
    same values in another memory layout (see :func:`maybe_views`). ``defaults`` sends only ``x`` and
    ``weight``, for a case with no bias, stride 1 and padding 0 (the contract's defaults).
    """
    if defaults and (c.bias is not None or c.stride != 1 or c.padding != 0):
        raise ValueError(f"defaults=True needs a case with bias None, stride 1, padding 0, not {c.kwargs}")
    kwargs = {} if defaults else {**c.kwargs, "bias": c.bias if bias is None else bias}
    outcome = getattr(sub, function)(c.x if x is None else x, c.weight if weight is None else weight, **kwargs)
    c64 = LayerCase(
        c.x.astype(np.float64),
        c.weight.astype(np.float64),
        None if c.bias is None else c.bias.astype(np.float64),
        c.stride,
        c.padding,
    )
    expected = ref.conv2d_layer(c64.x, c64.weight, c64.bias, stride=c.stride, padding=c.padding)
    scale = ref.conv2d_layer(
        np.abs(c64.x),
        np.abs(c64.weight),
        None if c64.bias is None else np.abs(c64.bias),
        stride=c.stride,
        padding=c.padding,
    )

    def confirm(hint: Hint) -> bool:
        """The same mistake on generic values of the same shapes (a shrunk case can match by chance)."""
        rng = np.random.default_rng(1202)
        generic = LayerCase(
            rng.standard_normal(c.x.shape),
            rng.standard_normal(c.weight.shape),
            None if c.bias is None else rng.standard_normal(c.bias.shape),
            c.stride,
            c.padding,
        )
        same = [h for h in layer_hints(ref, generic) if h.mistake == hint.mistake]  # (both sides, say)
        if not same:
            return False
        got = getattr(sub, function)(generic.x, generic.weight, **{**generic.kwargs, "bias": generic.bias}).value
        bound = ref.conv2d_layer(np.abs(generic.x), np.abs(generic.weight), None, stride=c.stride, padding=c.padding)
        tolerance = 1e-7 * (1.0 + float(bound.max()))
        return isinstance(got, np.ndarray) and any(reproduces(got, h.wrong_answer(), tolerance) for h in same)

    check_array(outcome, expected, scale=scale, hints=layer_hints(ref, c64), confirm=confirm)


# The conv2d_layer property suite. conv2d_fast (Task 5.1) has the same contract and faces every one
# of these checks too: test_part5_fast.py calls each with function="conv2d_fast".


def layer_hand_example(sub: SubmissionProxy, ref: ModuleType, function: str) -> None:
    """A hand-computed example with stride 2, padding 1 and a bias."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    check_layer(sub, ref, LayerCase(x, np.ones((1, 1, 3, 3)), np.array([0.5]), 2, 1), function=function)


def layer_in_any_layout(
    sub: SubmissionProxy, ref: ModuleType, function: str, c: LayerCase, data: st.DataObject
) -> None:
    """A generated case, each array sent in a drawn memory layout."""
    x, weight, bias = (data.draw(maybe_views(value)) for value in (c.x, c.weight, c.bias))
    check_layer(sub, ref, c, function=function, x=x, weight=weight, bias=bias)


def layer_realistic_size(sub: SubmissionProxy, ref: ModuleType, function: str) -> None:
    """Three 2x3x12x11 inputs with four 3x3 filters, padding 1 (the first one Fortran-ordered), then
    the last one with only x and weight given (the defaults: no bias, stride 1, padding 0)."""
    rng = np.random.default_rng(14)
    for index in range(3):
        x, weight, bias = rng.standard_normal((2, 3, 12, 11)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
        case = LayerCase(x, weight, bias, 1, 1)
        check_layer(sub, ref, case, function=function, x=layout_view(x, "fortran") if index == 0 else None)
    check_layer(sub, ref, LayerCase(x, weight, None, 1, 0), function=function, defaults=True)


def layer_rejects_bad_shapes(sub: SubmissionProxy, ref: ModuleType, function: str) -> None:
    """ValueError for wrong dimensions, channel or bias mismatches (after one valid call)."""
    f = getattr(sub, function)
    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
    small_x, small_w = np.arange(18.0).reshape(1, 2, 3, 3), np.arange(24.0).reshape(3, 2, 2, 2) % 5
    check_accepts(f, small_x, small_w, bias=np.arange(3.0), stride=1, padding=0)
    expect_error(f, np.ones((2, 5, 5)), w, because="x is 3-D; it must be (N, C_in, H, W)")
    expect_error(f, x, np.ones((2, 3, 3)), because="weight is 3-D; it must be (C_out, C_in, kh, kw)")
    expect_error(f, x, np.ones((3, 4, 3, 3)), because="weight expects 4 input channels but x has 2")
    # One channel or one bias would broadcast silently in numpy: only an explicit check refuses them.
    expect_error(f, np.ones((1, 1, 5, 5)), w, because="weight expects 2 input channels but x has 1")
    expect_error(f, x, w, bias=np.ones(2), because="bias has 2 entries but there are 3 filters")
    expect_error(f, x, w, bias=np.ones(1), because="bias has 1 entry but there are 3 filters")
    expect_error(f, x, w, bias=np.ones((3, 1)), because="bias is 2-D; it must be (C_out,) = (3,)")


def layer_rejects_bad_hyperparameters(sub: SubmissionProxy, ref: ModuleType, function: str) -> None:
    """ValueError for stride < 1, padding < 0 or a kernel larger than the padded input (after valid calls)."""
    f = getattr(sub, function)
    x, w = np.arange(16.0).reshape(1, 1, 4, 4), np.ones((1, 1, 3, 3))
    check_accepts(f, x, np.ones((1, 1, 6, 6)), bias=None, stride=1, padding=1)  # 6x6 just fits the padded 6x6
    check_accepts(f, x, w, bias=None, stride=3, padding=0)
    expect_error(f, x, w, stride=0, because="stride must be at least 1")
    expect_error(f, x, w, padding=-1, because="padding cannot be negative")
    expect_error(f, x, np.ones((1, 1, 7, 7)), padding=1, because="a 7x7 kernel is larger than the padded 6x6 input")
    # One axis too large is enough (one row too many would otherwise give an empty output).
    expect_error(f, x, np.ones((1, 1, 7, 3)), padding=1, because="a 7-row kernel is taller than the padded 6x6 input")
    expect_error(f, x, np.ones((1, 1, 3, 7)), padding=1, because="a 7-column kernel is wider than the padded 6x6 input")
    expect_error(f, x, np.ones((1, 1, 5, 2)), because="a 5-row kernel is taller than the 4x4 input (no padding)")


def layer_does_not_modify_inputs(sub: SubmissionProxy, function: str) -> None:
    """x, weight and bias unchanged (and the answer right)."""
    rng = np.random.default_rng(13)
    outcome = getattr(sub, function)(
        rng.standard_normal((2, 2, 5, 5)),
        rng.standard_normal((3, 2, 3, 3)),
        bias=rng.standard_normal(3),
        stride=1,
        padding=1,
    )
    check_no_mutation(outcome)


@graded("1.2", weight=1, public=True)
def test_layer_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches a hand-computed example with stride 2, padding 1 and a bias"""
    layer_hand_example(sub, ref, "conv2d_layer")


@graded("1.2", weight=2)
@given(case=layer_cases(max_stride=1, max_padding=0), data=st.data())
def test_layer_channels_and_bias(sub: SubmissionProxy, ref: ModuleType, case: LayerCase, data: st.DataObject) -> None:
    """matches the definition with several channels and filters (stride 1, no padding; any memory layout)"""
    layer_in_any_layout(sub, ref, "conv2d_layer", case, data)


@graded("1.2", weight=3)
@given(case=layer_cases(), data=st.data())
def test_layer_stride_and_padding(sub: SubmissionProxy, ref: ModuleType, case: LayerCase, data: st.DataObject) -> None:
    """matches the definition for every stride and padding (float32; C, Fortran, strided, reversed arrays)"""
    layer_in_any_layout(sub, ref, "conv2d_layer", case, data)


@graded("1.2", weight=1)
def test_layer_realistic_size(sub: SubmissionProxy, ref: ModuleType) -> None:
    """works on a realistic layer (2x3x12x11 input, four 3x3 filters, padding 1), and with the default arguments"""
    layer_realistic_size(sub, ref, "conv2d_layer")


@graded("1.2", weight=1)
def test_layer_rejects_bad_shapes(sub: SubmissionProxy, ref: ModuleType) -> None:
    """raises ValueError for wrong dimensions, channel or bias mismatches"""
    layer_rejects_bad_shapes(sub, ref, "conv2d_layer")


@graded("1.2", weight=1)
def test_layer_rejects_bad_hyperparameters(sub: SubmissionProxy, ref: ModuleType) -> None:
    """raises ValueError for stride < 1, padding < 0 or a kernel larger than the padded input"""
    layer_rejects_bad_hyperparameters(sub, ref, "conv2d_layer")


@graded("1.2", weight=1)
def test_layer_does_not_modify_inputs(sub: SubmissionProxy) -> None:
    """leaves x, weight and bias unchanged"""
    layer_does_not_modify_inputs(sub, "conv2d_layer")
