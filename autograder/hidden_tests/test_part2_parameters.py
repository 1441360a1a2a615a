"""Part 2: conv_output_size (2.1), dense_params (2.2), conv2d_params (2.3),
locally_connected2d_params (2.4) and network_summary (2.5).

Every answer here is an exact integer, so the checks are exact and typed (``check_exact``): ``3.0``
is not ``3``. The hints recognise the classic counting mistakes by recomputing each one's answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks import Hint, Outcome, SubmissionProxy, check_accepts, check_exact, expect_error
from autograder.feedback import describe_value, matching_hint

graded = pytest.mark.graded

Pair = int | tuple[int, int]

# ---------------------------------------------------------------------------------------------
# Strategies (Part 2 only: every argument is a small int, a pair of ints or a list of layer dicts)
# ---------------------------------------------------------------------------------------------


def _out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """The output length, computed here so that the strategies need no reference."""
    return (size + 2 * padding - kernel) // stride + 1


@st.composite
def output_size_args(draw: st.DrawFn) -> tuple[int, int, dict[str, int]]:
    """``(size, kernel_size, kwargs)`` for which the kernel fits in the padded input."""
    size = draw(st.integers(1, 40))
    padding = draw(st.integers(0, 3))
    kernel = draw(st.integers(1, size + 2 * padding))
    stride = draw(st.integers(1, 5))
    kwargs = {"stride": stride} if stride != 1 else {}
    if padding:
        kwargs["padding"] = padding
    return size, kernel, kwargs


@st.composite
def huge_output_size_args(draw: st.DrawFn) -> tuple[int, int, dict[str, int]]:
    """Sizes up to 2**60, where ``/`` (a float, exact only up to 2**53) and ``//`` give different ints."""
    size = draw(st.integers(2**53, 2**60))
    padding = draw(st.integers(0, 3))
    kernel = draw(st.integers(1, 11))
    stride = draw(st.sampled_from([1, 2, 3, 4, 7]))
    kwargs = {"stride": stride} if stride != 1 else {}
    if padding:
        kwargs["padding"] = padding
    return size, kernel, kwargs


def _pairs(low: int, high: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(low, high), st.integers(low, high))


@st.composite
def lc_param_args(draw: st.DrawFn, *, pairs: bool) -> tuple[Pair, int, int, Pair, dict[str, Any]]:
    """Arguments of ``locally_connected2d_params``: square ints and stride 1, or pairs and strides."""
    if pairs:
        H, W = draw(_pairs(1, 30))
        kh, kw = draw(st.integers(1, H)), draw(st.integers(1, W))
        stride = draw(st.integers(1, 4))
        size = cast(Pair, draw(st.sampled_from([(H, W), (H, W), H]))) if H == W else (H, W)
        kernel = cast(Pair, draw(st.sampled_from([(kh, kw), kh]))) if kh == kw else (kh, kw)
    else:
        H = draw(st.integers(1, 30))
        k = draw(st.integers(1, H))
        size, kernel, stride = H, k, 1
    C_in, C_out = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    bias = draw(st.booleans())
    kwargs: dict[str, Any] = {} if bias else {"bias": False}
    if stride != 1:
        kwargs["stride"] = stride
    return size, C_in, C_out, kernel, kwargs


@st.composite
def networks(draw: st.DrawFn, *, max_layers: int = 4) -> tuple[list[dict[str, Any]], tuple[int, int, int]]:
    """A small valid network of every layer type, with options sometimes left at their defaults."""
    input_shape = (draw(st.integers(1, 3)), draw(st.integers(1, 10)), draw(st.integers(1, 10)))
    shape: tuple[int, ...] = input_shape
    layers: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, max_layers))):
        image = len(shape) == 3
        kinds = ["conv2d", "locally_connected2d", "maxpool2d", "avgpool2d", "relu", "flatten"]
        kind = draw(st.sampled_from(kinds if image else ["dense", "relu", "flatten"]))
        layer: dict[str, Any] = {"type": kind}
        if kind in ("conv2d", "locally_connected2d"):
            C, H, W = shape
            padding = draw(st.integers(0, 2)) if kind == "conv2d" else 0
            kh, kw = draw(st.integers(1, min(4, H + 2 * padding))), draw(st.integers(1, min(4, W + 2 * padding)))
            stride = draw(st.integers(1, 3))
            layer["out_channels"] = C_out = draw(st.integers(1, 4))
            layer["kernel_size"] = kh if kh == kw and draw(st.booleans()) else (kh, kw)
            if stride != 1 or draw(st.booleans()):
                layer["stride"] = stride
            if padding or (kind == "conv2d" and draw(st.booleans())):
                layer["padding"] = padding
            if draw(st.booleans()):
                layer["bias"] = draw(st.booleans())
            shape = (C_out, _out(H, kh, stride, padding), _out(W, kw, stride, padding))
        elif kind in ("maxpool2d", "avgpool2d"):
            C, H, W = shape
            k = layer["kernel_size"] = draw(st.integers(1, min(3, H, W)))
            pool_stride = draw(st.one_of(st.none(), st.integers(1, 3)))
            if pool_stride is not None:
                layer["stride"] = pool_stride
            shape = (C, _out(H, k, pool_stride or k), _out(W, k, pool_stride or k))
        elif kind == "flatten":
            shape = (int(np_prod(shape)),)
        elif kind == "dense":
            layer["out_features"] = F = draw(st.integers(1, 12))
            if draw(st.booleans()):
                layer["bias"] = draw(st.booleans())
            shape = (F,)
        layers.append(layer)
    return layers, input_shape


def np_prod(shape: Sequence[int]) -> int:
    """The product of the entries (an int)."""
    product = 1
    for n in shape:
        product *= n
    return product


# ---------------------------------------------------------------------------------------------
# Checking integer counts
# ---------------------------------------------------------------------------------------------

FLOAT_HINT = Hint(
    "float-result",
    "return a Python int: use integer arithmetic (// divides and rounds down) rather than / or np.floor, "
    "which give floats.",
    lambda: None,
)


def check_count(outcome: Outcome, expected: int, *, what: str = "the result", hints: Sequence[Hint] = ()) -> None:
    """Check an exact int, with a dedicated message for a float (``3.0`` is not ``3``)."""
    got = outcome.value
    if type(got) is float:
        raise outcome.fail(f"expected {what}: {expected!r} (an int)\ngot: {got!r} (a float)", hint=FLOAT_HINT)
    check_exact(outcome, expected, what=what, hints=hints)


def _hint(mistake: str, text: str, wrong: Callable[[], Any], *, when: bool = True) -> list[Hint]:
    return [Hint(mistake, text, wrong)] if when else []


# ---------------------------------------------------------------------------------------------
# Task 2.1: conv_output_size
# ---------------------------------------------------------------------------------------------

OFF_BY_ONE_TEXT = (
    "the output size is (size + 2*padding - kernel_size) // stride + 1; you may have missed the + 1 "
    "(a kernel of size k fits at size - k + 1 positions)."
)
CEIL_TEXT = "the division rounds down: a last window that does not fit completely is dropped (use //, not ceil)."
PADDING_ONCE_TEXT = "padding adds zeros at both ends, so the padded length is size + 2*padding, not size + padding."
FLOAT_DIVISION_TEXT = (
    "/ divides in floating point, which holds integers exactly only up to 2**53, so int(... / stride) is off for "
    "large sizes: use integer division, (size + 2*padding - kernel_size) // stride + 1."
)
STRIDE_IGNORED_TEXT = "your count ignores the stride: with stride s only every s-th position is used."


def output_size_hints(size: int, kernel: int, stride: int, padding: int) -> list[Hint]:
    """Classic output-size mistakes for these arguments."""
    n = size + 2 * padding - kernel
    off_by_one, padding_once = n // stride, (size + padding - kernel) // stride + 1
    exact, float_plus_one, float_quotient = n // stride + 1, int(n / stride + 1), int(n / stride) + 1
    if padding and off_by_one == padding_once:  # e.g. padding 1, stride 1: both mistakes give this number
        formula = Hint("output-size-formula", f"{PADDING_ONCE_TEXT} And {OFF_BY_ONE_TEXT}", lambda: off_by_one)
        first = [formula]
    else:
        first = [
            *_hint("padding-counted-once", PADDING_ONCE_TEXT, lambda: padding_once, when=padding > 0),
            Hint("output-size-off-by-one", OFF_BY_ONE_TEXT, lambda: off_by_one),
        ]
    return [
        *first,
        *_hint("stride-ignored", STRIDE_IGNORED_TEXT, lambda: n + 1, when=stride > 1),
        *_hint("output-size-ceil", CEIL_TEXT, lambda: -(-n // stride) + 1, when=stride > 1),
        *_hint("float-division", FLOAT_DIVISION_TEXT, lambda: float_plus_one, when=float_plus_one != exact),
        *_hint(
            "float-division",
            FLOAT_DIVISION_TEXT,
            lambda: float_quotient,
            when=float_quotient not in (exact, float_plus_one),
        ),
        *_hint(
            "plus-one-inside-division",
            "the + 1 comes after the division: (size + 2*padding - kernel_size) // stride + 1.",
            lambda: (n + 1) // stride,
            when=stride > 1,
        ),
    ]


def _check_output_size(sub: SubmissionProxy, ref: ModuleType, size: int, kernel: int, **kwargs: int) -> None:
    outcome = sub.conv_output_size(size, kernel, **kwargs)
    stride, padding = kwargs.get("stride", 1), kwargs.get("padding", 0)
    expected = ref.conv_output_size(size, kernel, stride, padding)
    check_count(outcome, expected, hints=output_size_hints(size, kernel, stride, padding))


@graded("2.1", weight=2, public=True)
def test_output_size_hand_examples(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches hand-computed examples (LeNet's 32 -> 28, AlexNet's 224 -> 55)"""
    _check_output_size(sub, ref, 32, 5)  # 32 - 5 + 1 = 28
    _check_output_size(sub, ref, 5, 3, padding=2)  # (5 + 4 - 3) + 1 = 7: the padding makes the output larger
    _check_output_size(sub, ref, 224, 11, stride=4, padding=2)  # (224 + 4 - 11) // 4 + 1 = 55
    _check_output_size(sub, ref, 7, 3, stride=2, padding=1)  # (7 + 2 - 3) // 2 + 1 = 4
    _check_output_size(sub, ref, 6, 2, stride=2)  # 3: pooling halves the size
    _check_output_size(sub, ref, 2**60 + 1, 2, stride=3)  # (2**60 - 1) // 3 + 1 = 2**60 // 3 + 1: exact


@graded("2.1", weight=4)
@given(args=output_size_args())
def test_output_size_matches_formula(
    sub: SubmissionProxy, ref: ModuleType, args: tuple[int, int, dict[str, int]]
) -> None:
    """matches the formula for every size, kernel, stride and padding"""
    size, kernel, kwargs = args
    _check_output_size(sub, ref, size, kernel, **kwargs)


@graded("2.1", weight=1)
@given(args=huge_output_size_args())
def test_output_size_huge(sub: SubmissionProxy, ref: ModuleType, args: tuple[int, int, dict[str, int]]) -> None:
    """gives exact ints for sizes up to 2**60 (integer arithmetic, not floats)"""
    size, kernel, kwargs = args
    _check_output_size(sub, ref, size, kernel, **kwargs)


@graded("2.1", weight=1)
def test_output_size_padding_makes_kernel_fit(sub: SubmissionProxy, ref: ModuleType) -> None:
    """accepts a kernel larger than the input when the padding makes it fit"""
    _check_output_size(sub, ref, 2, 5, padding=2)  # (2 + 4 - 5) + 1 = 2
    _check_output_size(sub, ref, 1, 3, padding=1)  # a 3-wide 'same' convolution of a 1-pixel input: 1


@graded("2.1", weight=1)
def test_output_size_rejects_kernel_too_large(sub: SubmissionProxy) -> None:
    """raises ValueError when the kernel does not fit in the padded input"""
    check_accepts(sub.conv_output_size, 5, 5)  # a kernel as large as the input: 1
    check_accepts(sub.conv_output_size, 3, 5, padding=1)  # 3 + 2*1 = 5 padded cells: 1
    expect_error(sub.conv_output_size, 3, 5, because="a kernel of size 5 does not fit in an input of size 3")
    expect_error(
        sub.conv_output_size, 3, 6, padding=1, because="a kernel of size 6 does not fit in 3 + 2*1 = 5 padded cells"
    )


@graded("2.1", weight=1)
def test_output_size_rejects_bad_arguments(sub: SubmissionProxy) -> None:
    """raises ValueError for stride < 1, negative padding, or a size or kernel_size < 1"""
    check_accepts(sub.conv_output_size, 1, 1, stride=1, padding=0)  # the smallest valid arguments: 1
    check_accepts(sub.conv_output_size, 9, 3, stride=2, padding=0)  # 4
    expect_error(sub.conv_output_size, 5, 3, stride=0, because="stride must be at least 1")
    expect_error(sub.conv_output_size, 5, 3, padding=-1, because="padding cannot be negative")
    expect_error(sub.conv_output_size, 5, 0, because="kernel_size must be at least 1")
    expect_error(sub.conv_output_size, 0, 1, because="size must be at least 1")
    # Padding makes room for the kernel here, so only the check of size itself refuses it.
    expect_error(sub.conv_output_size, 0, 1, padding=1, because="size must be at least 1, even with padding")


# ---------------------------------------------------------------------------------------------
# Task 2.2: dense_params
# ---------------------------------------------------------------------------------------------

MISSING_BIAS_TEXT = "your count leaves out the biases: with bias=True each output has one bias."
BIAS_FLAG_TEXT = "with bias=False there are no biases: count the weights only."


def dense_hints(F_in: int, F_out: int, bias: bool) -> list[Hint]:
    """Classic dense-layer counting mistakes."""
    return [
        *_hint("missing-bias-count", MISSING_BIAS_TEXT, lambda: F_in * F_out, when=bias),
        *_hint(
            "bias-per-input",
            "a dense layer has one bias per output (out_features of them), not one per input.",
            lambda: F_in * F_out + F_in,
            when=bias,
        ),
        *_hint("bias-flag-ignored", BIAS_FLAG_TEXT, lambda: F_in * F_out + F_out, when=not bias),
    ]


def _check_dense(sub: SubmissionProxy, ref: ModuleType, F_in: int, F_out: int, **kwargs: bool) -> None:
    outcome = sub.dense_params(F_in, F_out, **kwargs)
    bias = kwargs.get("bias", True)
    check_count(outcome, ref.dense_params(F_in, F_out, bias), hints=dense_hints(F_in, F_out, bias))


@graded("2.2", weight=1, public=True)
def test_dense_hand_examples(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches the lecture's example (1,024 inputs to 64 outputs: 65,536 weights)"""
    _check_dense(sub, ref, 1024, 64, bias=False)  # 1024 * 64 = 65,536
    _check_dense(sub, ref, 1024, 64)  # + 64 biases = 65,600
    _check_dense(sub, ref, 25088, 4096)  # VGG-16's first dense layer: 102,764,544


@graded("2.2", weight=2)
@given(F_in=st.integers(1, 5000), F_out=st.integers(1, 5000), bias=st.sampled_from([None, True, False]))
def test_dense_matches_formula(sub: SubmissionProxy, ref: ModuleType, F_in: int, F_out: int, bias: bool | None) -> None:
    """matches the formula with and without biases"""
    _check_dense(sub, ref, F_in, F_out, **({} if bias is None else {"bias": bias}))


# ---------------------------------------------------------------------------------------------
# Task 2.3: conv2d_params
# ---------------------------------------------------------------------------------------------

MISSING_IN_CHANNELS_TEXT = (
    "each filter covers all in_channels input channels: it has in_channels * kh * kw weights, not kh * kw."
)
KERNEL_PAIR_TEXT = "kernel_size=(kh, kw) is a kh x kw kernel: multiply both entries, do not square one of them."


def _kernel(kernel: Pair) -> tuple[int, int]:
    return (kernel, kernel) if isinstance(kernel, int) else kernel


def conv_param_hints(C_in: int, C_out: int, kernel: Pair, bias: bool) -> list[Hint]:
    """Classic conv-layer counting mistakes."""
    kh, kw = _kernel(kernel)
    b = C_out if bias else 0
    return [
        *_hint(
            "missing-bias-count",
            MISSING_BIAS_TEXT.replace("output", "filter"),
            lambda: C_out * C_in * kh * kw,
            when=bias,
        ),
        *_hint("bias-flag-ignored", BIAS_FLAG_TEXT, lambda: C_out * C_in * kh * kw + C_out, when=not bias),
        Hint("missing-in-channels", MISSING_IN_CHANNELS_TEXT, lambda: C_out * kh * kw + b),
        *_hint(
            "bias-per-input-channel",
            "a conv layer has one bias per filter (out_channels of them), not one per input channel.",
            lambda: C_out * C_in * kh * kw + C_in,
            when=bias,
        ),
        *_hint("kernel-pair", KERNEL_PAIR_TEXT, lambda: C_out * C_in * kh * kh + b, when=kh != kw),
        *_hint("kernel-pair", KERNEL_PAIR_TEXT, lambda: C_out * C_in * kw * kw + b, when=kh != kw),
    ]


def _check_conv_params(
    sub: SubmissionProxy, ref: ModuleType, C_in: int, C_out: int, kernel: Pair, **kwargs: bool
) -> None:
    outcome = sub.conv2d_params(C_in, C_out, kernel, **kwargs)
    bias = kwargs.get("bias", True)
    check_count(
        outcome, ref.conv2d_params(C_in, C_out, kernel, bias), hints=conv_param_hints(C_in, C_out, kernel, bias)
    )


@graded("2.3", weight=1, public=True)
def test_conv_params_hand_examples(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches hand-computed examples (eight 3x3 filters: 72 weights; VGG's first layer: 1,792)"""
    _check_conv_params(sub, ref, 1, 8, 3, bias=False)  # 8 * 1 * 3 * 3 = 72
    _check_conv_params(sub, ref, 3, 64, 3)  # 64 * 3 * 9 + 64 = 1,792
    _check_conv_params(sub, ref, 6, 16, 5)  # LeNet's second conv: 16 * 6 * 25 + 16 = 2,416


@graded("2.3", weight=2)
@given(
    C_in=st.integers(1, 64), C_out=st.integers(1, 64), k=st.integers(1, 7), bias=st.sampled_from([None, True, False])
)
def test_conv_params_matches_formula(
    sub: SubmissionProxy, ref: ModuleType, C_in: int, C_out: int, k: int, bias: bool | None
) -> None:
    """matches the formula for square kernels, with and without biases"""
    _check_conv_params(sub, ref, C_in, C_out, k, **({} if bias is None else {"bias": bias}))


@graded("2.3", weight=1)
@given(C_in=st.integers(1, 16), C_out=st.integers(1, 16), kernel=_pairs(1, 7), bias=st.booleans())
def test_conv_params_kernel_pair(
    sub: SubmissionProxy, ref: ModuleType, C_in: int, C_out: int, kernel: tuple[int, int], bias: bool
) -> None:
    """accepts kernel_size as a pair (kh, kw)"""
    _check_conv_params(sub, ref, C_in, C_out, kernel, bias=bias)


# ---------------------------------------------------------------------------------------------
# Task 2.4: locally_connected2d_params
# ---------------------------------------------------------------------------------------------


def lc_param_hints(size: Pair, C_in: int, C_out: int, kernel: Pair, stride: int, bias: bool) -> list[Hint]:
    """Classic locally-connected counting mistakes for these arguments."""
    (H, W), (kh, kw) = _kernel(size), _kernel(kernel)
    Ho, Wo = _out(H, kh, stride), _out(W, kw, stride)
    F, b = C_in * kh * kw, 1 if bias else 0
    return [
        *_hint(
            "lc-bias-shared",
            "a locally-connected layer has no sharing at all, biases included: one bias per output position "
            "and channel (H_out * W_out * C_out), not one per channel.",
            lambda: Ho * Wo * C_out * F + C_out,
            when=bias,
        ),
        Hint(
            "lc-input-positions",
            "there is one filter bank per OUTPUT position: H_out * W_out = (H - kh) // stride + 1 times "
            "(W - kw) // stride + 1 positions, not H * W.",
            lambda: H * W * C_out * (F + b),
        ),
        *_hint("missing-bias-count", MISSING_BIAS_TEXT, lambda: Ho * Wo * C_out * F, when=bias),
        *_hint("bias-flag-ignored", BIAS_FLAG_TEXT, lambda: Ho * Wo * C_out * (F + 1), when=not bias),
        *_hint("missing-in-channels", MISSING_IN_CHANNELS_TEXT, lambda: Ho * Wo * C_out * (kh * kw + b), when=C_in > 1),
        Hint(
            "output-size-off-by-one",
            "the number of positions along an axis is (H - kh) // stride + 1; you may have missed the + 1.",
            lambda: ((H - kh) // stride) * ((W - kw) // stride) * C_out * (F + b),
        ),
        *_hint(
            "stride-ignored",
            STRIDE_IGNORED_TEXT,
            lambda: (H - kh + 1) * (W - kw + 1) * C_out * (F + b),
            when=stride > 1,
        ),
        *_hint(
            "output-size-ceil",
            CEIL_TEXT,
            lambda: (-(-(H - kh) // stride) + 1) * (-(-(W - kw) // stride) + 1) * C_out * (F + b),
            when=stride > 1,
        ),
        *_hint("kernel-pair", KERNEL_PAIR_TEXT, lambda: Ho * Wo * C_out * (C_in * kh * kh + b), when=kh != kw),
    ]


def _check_lc_params(
    sub: SubmissionProxy, ref: ModuleType, size: Pair, C_in: int, C_out: int, kernel: Pair, **kwargs: Any
) -> None:
    outcome = sub.locally_connected2d_params(size, C_in, C_out, kernel, **kwargs)
    stride, bias = kwargs.get("stride", 1), kwargs.get("bias", True)
    expected = ref.locally_connected2d_params(size, C_in, C_out, kernel, stride, bias)
    check_count(outcome, expected, hints=lc_param_hints(size, C_in, C_out, kernel, stride, bias))


@graded("2.4", weight=1, public=True)
def test_lc_params_slide_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """gets the lecture's slide case right: 443,556 weights, not about 148,000"""
    _check_lc_params(sub, ref, 224, 1, 1, 3, bias=False)  # 222 * 222 positions * 3 * 3 = 443,556


@graded("2.4", weight=1, public=True)
def test_lc_params_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """counts one bias per output position and channel (a hand-computed example)"""
    # 6x6 input, 3x3 kernel: 4x4 positions, each with 3 filters of 2*3*3 weights and a bias: 16 * 3 * 19 = 912
    _check_lc_params(sub, ref, 6, 2, 3, 3)


@graded("2.4", weight=2)
@given(args=lc_param_args(pairs=False))
def test_lc_params_matches_formula(
    sub: SubmissionProxy, ref: ModuleType, args: tuple[Pair, int, int, Pair, dict[str, Any]]
) -> None:
    """matches the formula for square inputs and kernels (stride 1)"""
    size, C_in, C_out, kernel, kwargs = args
    _check_lc_params(sub, ref, size, C_in, C_out, kernel, **kwargs)


@graded("2.4", weight=2)
@given(args=lc_param_args(pairs=True))
def test_lc_params_pairs_and_stride(
    sub: SubmissionProxy, ref: ModuleType, args: tuple[Pair, int, int, Pair, dict[str, Any]]
) -> None:
    """handles (H, W) inputs, (kh, kw) kernels and strides"""
    size, C_in, C_out, kernel, kwargs = args
    _check_lc_params(sub, ref, size, C_in, C_out, kernel, **kwargs)


@graded("2.4", weight=1)
def test_lc_params_rejects_bad_arguments(sub: SubmissionProxy) -> None:
    """raises ValueError when the kernel does not fit in the input or the stride is < 1"""
    function = sub.locally_connected2d_params
    check_accepts(function, (8, 3), 1, 1, 3)  # a 3x3 kernel just fits an 8x3 input: 6 positions * 10 = 60
    check_accepts(function, 8, 2, 3, 3, stride=5)  # 2x2 positions, 3 filters of 2*3*3 + 1: 228
    expect_error(function, 3, 1, 1, 5, because="a 5x5 kernel does not fit in a 3x3 input")
    expect_error(function, (8, 2), 1, 1, 3, because="a 3x3 kernel does not fit in an 8x2 input (too narrow)")
    expect_error(function, 8, 1, 1, 3, stride=0, because="stride must be at least 1")


# ---------------------------------------------------------------------------------------------
# Task 2.5: network_summary
# ---------------------------------------------------------------------------------------------

LENET5: list[dict[str, Any]] = [
    {"type": "conv2d", "out_channels": 6, "kernel_size": 5},
    {"type": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "out_channels": 16, "kernel_size": 5},
    {"type": "relu"},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "dense", "out_features": 120},
    {"type": "relu"},
    {"type": "dense", "out_features": 84},
    {"type": "relu"},
    {"type": "dense", "out_features": 10},
]


def _vgg16() -> list[dict[str, Any]]:
    layers: list[dict[str, Any]] = []
    for channels, repeat in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(repeat):
            layers += [{"type": "conv2d", "out_channels": channels, "kernel_size": 3, "padding": 1}, {"type": "relu"}]
        layers.append({"type": "maxpool2d", "kernel_size": 2})
    layers.append({"type": "flatten"})
    for features in (4096, 4096):
        layers += [{"type": "dense", "out_features": features}, {"type": "relu"}]
    return [*layers, {"type": "dense", "out_features": 1000}]


def _alexnet() -> list[dict[str, Any]]:
    """torchvision's AlexNet (its adaptive pooling to 6x6 is the identity at 224x224)."""
    conv = lambda c, k, s=1, p=0: {"type": "conv2d", "out_channels": c, "kernel_size": k, "stride": s, "padding": p}  # noqa: E731
    relu, pool = {"type": "relu"}, {"type": "maxpool2d", "kernel_size": 3, "stride": 2}
    return [
        *(conv(64, 11, 4, 2), relu, pool),
        *(conv(192, 5, 1, 2), relu, pool),
        *(conv(384, 3, 1, 1), relu, conv(256, 3, 1, 1), relu, conv(256, 3, 1, 1), relu, pool),
        {"type": "flatten"},
        *({"type": "dense", "out_features": 4096}, relu, {"type": "dense", "out_features": 4096}, relu),
        {"type": "dense", "out_features": 1000},
    ]


def _same_plain(got: Any, wanted: Any) -> bool:
    """Exact equality with exact types (as check_exact): a list is not a tuple, 3.0 is not 3."""
    if isinstance(wanted, list | tuple):
        return (
            type(got) is type(wanted)
            and len(got) == len(wanted)
            and all(_same_plain(g, w) for g, w in zip(got, wanted, strict=True))
        )
    return type(got) is type(wanted) and got == wanted


def _with_default_pool_stride(layers: list[dict[str, Any]], stride: int) -> list[dict[str, Any]]:
    return [
        {**layer, "stride": stride} if layer["type"].endswith("pool2d") and "stride" not in layer else layer
        for layer in layers
    ]


def summary_hints(ref: ModuleType, layers: list[dict[str, Any]], input_shape: tuple[int, ...]) -> list[Hint]:
    """Classic network_summary mistakes, each recomputed with the reference on a changed network."""
    summary = lambda: ref.network_summary(layers, input_shape)  # noqa: E731

    def cumulative() -> list[tuple[tuple[int, ...], int]]:
        total, out = 0, []
        for shape, params in summary():
            total += params
            out.append((shape, total))
        return out

    return [
        Hint(
            "shape-not-tuple",
            "each entry is a pair (output_shape, params) with output_shape a tuple of ints, e.g. ((6, 28, 28), 156); "
            "you return lists.",
            lambda: [[list(shape), params] for shape, params in summary()],
        ),
        Hint(
            "shape-not-tuple",
            "each output_shape must be a tuple of ints, e.g. (6, 28, 28), not a list.",
            lambda: [(list(shape), params) for shape, params in summary()],
        ),
        Hint(
            "pool-stride-default",
            "a pooling layer without a 'stride' uses stride = kernel_size (non-overlapping windows), not 1.",
            lambda: ref.network_summary(_with_default_pool_stride(layers, 1), input_shape),
        ),
        Hint(
            "padding-ignored",
            "a conv2d layer's 'padding' option adds zeros on every side and changes the output size.",
            lambda: ref.network_summary(
                [{**layer, "padding": 0} if layer["type"] == "conv2d" else layer for layer in layers], input_shape
            ),
        ),
        Hint(
            "cumulative-params",
            "params is the count of each layer on its own, not the running total.",
            cumulative,
        ),
    ]


def _layer_text(layer: dict[str, Any]) -> str:
    options = ", ".join(f"{key}={value!r}" for key, value in layer.items() if key != "type")
    return f"{layer.get('type')}({options})"


SHAPE_TEXT = {
    "conv2d": "a conv2d layer gives (out_channels, conv_output_size(H, kh, stride, padding), "
    "conv_output_size(W, kw, stride, padding)).",
    "locally_connected2d": "a locally_connected2d layer gives (out_channels, conv_output_size(H, kh, stride), "
    "conv_output_size(W, kw, stride)): no padding.",
    "maxpool2d": "a pooling layer keeps the channels and gives conv_output_size(H, k, stride) along each axis, "
    "with stride = kernel_size unless the layer says otherwise.",
    "flatten": "flatten turns (C, H, W) into (C * H * W,).",
    "relu": "relu keeps the shape.",
    "dense": "a dense layer gives (out_features,).",
}
SHAPE_TEXT["avgpool2d"] = SHAPE_TEXT["maxpool2d"]
PARAMS_TEXT = {
    "conv2d": "a conv2d layer has conv2d_params(C_in, out_channels, kernel_size, bias) parameters.",
    "locally_connected2d": "a locally_connected2d layer has locally_connected2d_params((H, W), C_in, out_channels, "
    "kernel_size, stride, bias) parameters, H and W being its input's.",
    "dense": "a dense layer has dense_params(F_in, out_features, bias) parameters.",
}


def _entry_hint(layer: dict[str, Any], got: Any, expected: tuple[tuple[int, ...], int]) -> Hint | None:
    """A pointer to the rule for this layer, when the entry has the right form but a wrong number."""
    if not (
        type(got) is tuple and len(got) == 2 and _same_plain(got[0], expected[0]) != _same_plain(got[1], expected[1])
    ):
        return None
    kind = str(layer.get("type"))
    if not _same_plain(got[0], expected[0]):
        text = SHAPE_TEXT.get(kind)
        return None if text is None else Hint("summary-wrong-shape", f"check the output shape: {text}", lambda: None)
    text = PARAMS_TEXT.get(kind, "this layer has no parameters.")
    return Hint("summary-wrong-params", f"check the parameter count: {text}", lambda: None)


def check_summary(
    outcome: Outcome,
    expected: list[tuple[tuple[int, ...], int]],
    layers: list[dict[str, Any]],
    input_shape: tuple[int, ...],
    hints: Sequence[Hint],
) -> None:
    """Check a summary exactly; on failure name the first layer whose entry is wrong."""
    got = outcome.value
    if _same_plain(got, expected):
        return
    hint = matching_hint(hints, got, _same_plain)
    total = sum(params for _, params in expected)
    if type(got) is not list:
        problem = (
            f"the result should be a list with one (output_shape, params) pair per layer; got {describe_value(got)}"
        )
        raise outcome.fail(problem, hint=hint)
    lines = []
    if len(got) != len(expected):
        lines.append(
            f"the network has {len(expected)} layers, so the summary needs {len(expected)} entries; got {len(got)}"
        )
    index = next((i for i, (g, e) in enumerate(zip(got, expected, strict=False)) if not _same_plain(g, e)), None)
    if index is not None:
        shape_in = expected[index - 1][0] if index else input_shape
        lines.append(
            f"the first wrong entry is layer {index}, {_layer_text(layers[index])}, on input shape {shape_in}:\n"
            f"  expected {expected[index]!r}\n"
            f"  got      {describe_value(got[index])}"
        )
        hint = hint or _entry_hint(layers[index], got[index], expected[index])
    lines.append(f"(the expected total is {total:,} parameters)")
    raise outcome.fail("\n".join(lines), hint=hint)


def _check_summary(
    sub: SubmissionProxy, ref: ModuleType, layers: list[dict[str, Any]], input_shape: tuple[int, ...]
) -> None:
    outcome = sub.network_summary(layers, input_shape)
    expected = ref.network_summary(layers, input_shape)
    check_summary(outcome, expected, layers, input_shape, summary_hints(ref, layers, input_shape))


@graded("2.5", weight=2, public=True)
def test_summary_lenet5(sub: SubmissionProxy, ref: ModuleType) -> None:
    """summarises LeNet-5 at (1, 32, 32) layer by layer (61,706 parameters)"""
    _check_summary(sub, ref, LENET5, (1, 32, 32))


@graded("2.5", weight=1)
def test_summary_vgg16(sub: SubmissionProxy, ref: ModuleType) -> None:
    """reproduces VGG-16's published total (138,357,544 parameters at (3, 224, 224))"""
    _check_summary(sub, ref, _vgg16(), (3, 224, 224))


@graded("2.5", weight=1)
def test_summary_alexnet(sub: SubmissionProxy, ref: ModuleType) -> None:
    """reproduces AlexNet's published total (61,100,840 parameters, torchvision's layout)"""
    _check_summary(sub, ref, _alexnet(), (3, 224, 224))


@graded("2.5", weight=1)
def test_summary_pooling(sub: SubmissionProxy, ref: ModuleType) -> None:
    """pools with stride = kernel_size by default, rounding down, without parameters"""
    pools = [
        {"type": "maxpool2d", "kernel_size": 2},  # (3, 9, 7) -> (3, 4, 3): the last row and column are dropped
        {"type": "avgpool2d", "kernel_size": 2, "stride": 1},  # -> (3, 3, 2)
        {"type": "avgpool2d", "kernel_size": 2},  # -> (3, 1, 1)
    ]
    _check_summary(sub, ref, pools, (3, 9, 7))


@graded("2.5", weight=1)
def test_summary_locally_connected(sub: SubmissionProxy, ref: ModuleType) -> None:
    """counts locally-connected layers (a small DeepFace-like network)"""
    layers: list[dict[str, Any]] = [
        {"type": "conv2d", "out_channels": 8, "kernel_size": 3},  # (8, 14, 12)
        {"type": "maxpool2d", "kernel_size": 2},  # (8, 7, 6)
        {"type": "locally_connected2d", "out_channels": 4, "kernel_size": (3, 2)},  # (4, 5, 5): 25*4*(8*6+1)
        {"type": "relu"},
        {"type": "locally_connected2d", "out_channels": 2, "kernel_size": 3, "stride": 2, "bias": False},  # (2, 2, 2)
        {"type": "flatten"},
        {"type": "dense", "out_features": 5, "bias": False},
    ]
    _check_summary(sub, ref, layers, (1, 16, 14))


@graded("2.5", weight=2)
@given(network=networks())
def test_summary_matches_reference(
    sub: SubmissionProxy, ref: ModuleType, network: tuple[list[dict[str, Any]], tuple[int, int, int]]
) -> None:
    """matches the definition on generated networks (every layer type and option)"""
    layers, input_shape = network
    _check_summary(sub, ref, layers, input_shape)


@graded("2.5", weight=1)
def test_summary_rejects_unknown_type(sub: SubmissionProxy) -> None:
    """raises ValueError for an unknown layer type"""
    conv = {"type": "conv2d", "out_channels": 2, "kernel_size": 3}
    check_accepts(sub.network_summary, [conv, {"type": "relu"}, {"type": "flatten"}], (1, 8, 8))
    expect_error(
        sub.network_summary,
        [conv, {"type": "conv3d", "out_channels": 2, "kernel_size": 3}],
        (1, 8, 8),
        because="'conv3d' is not one of the layer types of the contract",
    )
    expect_error(
        sub.network_summary, [{"type": "lstm"}], (1, 8, 8), because="'lstm' is not a layer type of the contract"
    )


@graded("2.5", weight=1)
def test_summary_rejects_missing_option(sub: SubmissionProxy) -> None:
    """raises ValueError for a layer with a missing option"""
    check_accepts(sub.network_summary, [{"type": "conv2d", "out_channels": 2, "kernel_size": 3}], (1, 8, 8))
    check_accepts(sub.network_summary, [{"type": "flatten"}, {"type": "dense", "out_features": 3}], (1, 8, 8))
    expect_error(
        sub.network_summary,
        [{"type": "conv2d", "out_channels": 2}],
        (1, 8, 8),
        because="the conv2d layer has no kernel_size (the docstring asks for a ValueError, not a KeyError)",
    )
    expect_error(
        sub.network_summary,
        [{"type": "flatten"}, {"type": "dense"}],
        (1, 8, 8),
        because="the dense layer has no out_features (the docstring asks for a ValueError, not a KeyError)",
    )


@graded("2.5", weight=1)
def test_summary_rejects_impossible_shapes(sub: SubmissionProxy) -> None:
    """raises ValueError for a dense layer on an image and for shapes a layer cannot take"""
    dense = {"type": "dense", "out_features": 10}
    pool = {"type": "maxpool2d", "kernel_size": 2}
    check_accepts(sub.network_summary, [{"type": "flatten"}, dense], (1, 4, 4))
    check_accepts(sub.network_summary, [{"type": "conv2d", "out_channels": 2, "kernel_size": 4}, pool], (1, 5, 5))
    expect_error(
        sub.network_summary, [dense], (1, 4, 4), because="a dense layer needs a flat input; add a flatten first"
    )
    expect_error(
        sub.network_summary,
        [{"type": "conv2d", "out_channels": 2, "kernel_size": 5}],
        (1, 4, 4),
        because="a 5x5 kernel does not fit in a 4x4 input",
    )
    expect_error(
        sub.network_summary,
        [{"type": "maxpool2d", "kernel_size": 2}, {"type": "maxpool2d", "kernel_size": 2}],
        (1, 3, 3),
        because="the second 2x2 pooling gets a 1x1 input",
    )
    expect_error(
        sub.network_summary,
        [{"type": "flatten"}, {"type": "conv2d", "out_channels": 2, "kernel_size": 1}],
        (1, 4, 4),
        because="a conv2d layer needs an image input (C, H, W), not a flat one",
    )
