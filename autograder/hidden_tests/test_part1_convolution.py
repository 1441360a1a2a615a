"""Part 1: conv2d (Task 1.1) and conv2d_layer (Task 1.2)."""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks import Hint, SubmissionProxy, check_array, check_no_mutation, expect_error, plain
from autograder.hidden_tests.strategies import ConvCase, LayerCase, conv_cases, layer_cases, maybe_views

graded = pytest.mark.graded

FLIP_HINT = (
    "your output equals the convolution with the kernel flipped. The lecture's formula is a "
    "cross-correlation: out[i, j] = sum kernel[m, n] * image[i + m, j + n], with no flip."
)
TRANSPOSE_HINT = (
    "your output equals the result with the kernel transposed: kernel[m, n] pairs with image[i + m, j + n] "
    "(m rows, n columns)."
)


def conv2d_hints(ref: ModuleType, image: np.ndarray, kernel: np.ndarray) -> list[Hint]:
    """Classic conv2d mistakes for this input."""
    (H, W), (kh, kw) = image.shape, kernel.shape
    return [
        Hint("flipped-kernel", FLIP_HINT, lambda: ref.conv2d(image, kernel[::-1, ::-1])),
        Hint("transposed-kernel", TRANSPOSE_HINT, lambda: ref.conv2d(image, kernel.T)),
        Hint(
            "output-size-off-by-one",
            "the output has one row/column too few: a kernel of size k fits at H - k + 1 positions, not H - k.",
            lambda: (H - kh, W - kw),
        ),
        Hint(
            "full-output",
            "your output is a 'full' convolution (size H + k - 1); use only positions where the kernel fits.",
            lambda: (H + kh - 1, W + kw - 1),
        ),
        Hint(
            "same-output",
            "your output has the input's size ('same'); use only positions where the kernel fits (H - k + 1).",
            lambda: (H, W),
        ),
    ]


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
    expect_error(sub.conv2d, np.ones((3, 3)), np.ones((4, 2)), because="the 4x2 kernel is taller than the 3x3 image")
    expect_error(sub.conv2d, np.ones((3, 3)), np.ones((2, 4)), because="the 2x4 kernel is wider than the 3x3 image")
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
    """Classic conv2d_layer mistakes for this case (each only where it changes the answer)."""
    s, p = c.stride, c.padding
    N, _, H, W = c.x.shape
    C_out, _, kh, kw = c.weight.shape
    full = lambda: ref.conv2d_layer(c.x, c.weight, c.bias, stride=1, padding=p)  # noqa: E731
    hints = [
        Hint(
            "flipped-kernel",
            FLIP_HINT,
            lambda: ref.conv2d_layer(c.x, c.weight[..., ::-1, ::-1], c.bias, stride=s, padding=p),
        ),
        Hint(
            "transposed-kernel",
            TRANSPOSE_HINT,
            lambda: ref.conv2d_layer(c.x, c.weight.swapaxes(2, 3), c.bias, stride=s, padding=p),
        ),
    ]
    if c.bias is not None:
        hints.append(
            Hint(
                "missing-bias",
                "your output equals the result without the bias: add bias[o] to every position of output channel o.",
                lambda: ref.conv2d_layer(c.x, c.weight, None, stride=s, padding=p),
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
                lambda: full()[:, :, ::s, :],
            ),
            Hint(
                "stride-one-axis",
                "the stride seems applied along the columns only; it applies along both axes.",
                lambda: full()[:, :, :, ::s],
            ),
            Hint(
                "output-size-ceil",
                "your output is one larger than (H + 2p - kh) // s + 1: the division rounds down.",
                lambda: (N, C_out, -(-(H + 2 * p - kh) // s) + 1, -(-(W + 2 * p - kw) // s) + 1),
            ),
        ]
    hints.append(
        Hint(
            "output-size-off-by-one",
            "the output size is (H + 2p - kh) // s + 1 (you may have missed the + 1).",
            lambda: (N, C_out, (H + 2 * p - kh) // s, (W + 2 * p - kw) // s),
        )
    )
    return hints


def check_layer(
    sub: SubmissionProxy, ref: ModuleType, c: LayerCase, *, function: str = "conv2d_layer", x: object = None
) -> None:
    """Call ``function`` (conv2d_layer or conv2d_fast) on a case and check it against the reference."""
    outcome = getattr(sub, function)(c.x if x is None else x, c.weight, **c.kwargs)
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
    check_array(outcome, expected, scale=scale, hints=layer_hints(ref, c64))


@graded("1.2", weight=1, public=True)
def test_layer_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches a hand-computed example with stride 2, padding 1 and a bias"""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    check_layer(sub, ref, LayerCase(x, np.ones((1, 1, 3, 3)), np.array([0.5]), 2, 1))


@graded("1.2", weight=2)
@given(case=layer_cases(max_stride=1, max_padding=0))
def test_layer_channels_and_bias(sub: SubmissionProxy, ref: ModuleType, case: LayerCase) -> None:
    """matches the definition with several channels and filters (stride 1, no padding)"""
    check_layer(sub, ref, case)


@graded("1.2", weight=3)
@given(case=layer_cases(), data=st.data())
def test_layer_stride_and_padding(sub: SubmissionProxy, ref: ModuleType, case: LayerCase, data: st.DataObject) -> None:
    """matches the definition for every stride and padding (float32 and views included)"""
    check_layer(sub, ref, case, x=data.draw(maybe_views(case.x)))


@graded("1.2", weight=1)
def test_layer_realistic_size(sub: SubmissionProxy, ref: ModuleType) -> None:
    """works on a realistic layer (2x3x12x11 input, four 3x3 filters, padding 1)"""
    rng = np.random.default_rng(14)
    for _ in range(3):
        x, weight, bias = rng.standard_normal((2, 3, 12, 11)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
        check_layer(sub, ref, LayerCase(x, weight, bias, 1, 1))


@graded("1.2", weight=1)
def test_layer_rejects_bad_shapes(sub: SubmissionProxy) -> None:
    """raises ValueError for wrong dimensions, channel or bias mismatches"""
    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
    expect_error(sub.conv2d_layer, np.ones((2, 5, 5)), w, because="x is 3-D; it must be (N, C_in, H, W)")
    expect_error(sub.conv2d_layer, x, np.ones((2, 3, 3)), because="weight is 3-D; it must be (C_out, C_in, kh, kw)")
    expect_error(sub.conv2d_layer, x, np.ones((3, 4, 3, 3)), because="weight expects 4 input channels but x has 2")
    expect_error(sub.conv2d_layer, x, w, bias=np.ones(2), because="bias has 2 entries but there are 3 filters")


@graded("1.2", weight=1)
def test_layer_rejects_bad_hyperparameters(sub: SubmissionProxy) -> None:
    """raises ValueError for stride < 1, padding < 0 or a kernel larger than the padded input"""
    x, w = np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3))
    expect_error(sub.conv2d_layer, x, w, stride=0, because="stride must be at least 1")
    expect_error(sub.conv2d_layer, x, w, padding=-1, because="padding cannot be negative")
    expect_error(
        sub.conv2d_layer,
        x,
        np.ones((1, 1, 7, 7)),
        padding=1,
        because="a 7x7 kernel is larger than the padded 6x6 input",
    )


@graded("1.2", weight=1)
def test_layer_does_not_modify_inputs(sub: SubmissionProxy) -> None:
    """leaves x, weight and bias unchanged"""
    rng = np.random.default_rng(13)
    outcome = sub.conv2d_layer(
        rng.standard_normal((2, 2, 5, 5)),
        rng.standard_normal((3, 2, 3, 3)),
        bias=rng.standard_normal(3),
        stride=1,
        padding=1,
    )
    check_no_mutation(outcome)
