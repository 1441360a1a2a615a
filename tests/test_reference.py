"""The reference solution checked against oracles nobody here wrote, plus properties of the maths.

* PyTorch (optional, skipped cleanly without it): ``torch.nn.functional.conv2d`` for the conv layers,
  autograd for the gradients, ``F.unfold`` for the locally-connected layer, circular ``F.pad`` for the
  circular convolution, and ``nn`` modules (on the ``meta`` device: shapes and parameter counts
  without allocating anything) for ``network_summary``.
* SciPy and NumPy: ``scipy.signal.correlate2d``, ``scipy.ndimage.correlate(mode="wrap")``,
  ``scipy.ndimage.shift``, ``np.roll`` and an explicit FFT.
* Published parameter totals (VGG-16, AlexNet, LeNet-5, Keras' LocallyConnected2D example) and the
  lecture's numbers.
* Central differences for both backward passes.
* Hypothesis properties: tied locally-connected == conv, circular conv is exactly shift-equivariant,
  an untied locally-connected layer is not, the summed-gradient identity, linearity, conv2d_fast ==
  conv2d_layer, the single-channel case, no mutation of inputs, float32 accepted.

Most properties draw small integer-valued floats: every sum of products is then exact in float64,
so "equal" can be asserted exactly whatever order an implementation adds the terms in.
"""

from __future__ import annotations

import copy
import itertools
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from autograder.reference import load_reference

ws = load_reference()

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=30)


def torch_or_skip() -> Any:
    """The torch module, or skip the calling test (torch is an optional test dependency)."""
    return pytest.importorskip("torch")


def ints(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """float64 arrays holding small integers (sums of products stay exact)."""
    return arrays(np.float64, shape, elements=st.integers(-4, 4).map(float))


def normal(seed: int, *shape: int) -> np.ndarray:
    """Generic (non-integer) float64 values from a seeded generator."""
    return np.random.default_rng(seed).standard_normal(shape)


def layer_scale(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int, padding: int) -> np.ndarray:
    """Per output entry, the sum of the magnitudes of its terms (tolerances are relative to it)."""
    absb = None if b is None else np.abs(b).astype(np.float64)
    return ws.conv2d_layer(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64), absb, stride, padding)


def assert_close_scaled(got: np.ndarray, expected: np.ndarray, scale: np.ndarray, rtol: float) -> None:
    assert got.shape == expected.shape
    error = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(expected, dtype=np.float64))
    assert np.all(error <= rtol * (scale + 1e-3 * float(scale.max(initial=0.0))) + 1e-300), float(error.max())


# Layer cases: (N, C_in, H, W, C_out, kh, kw, stride, padding, bias)
LAYER_CASES = [
    (1, 1, 5, 5, 1, 3, 3, 1, 0, False),
    (2, 3, 7, 6, 4, 3, 3, 1, 1, True),
    (2, 2, 8, 9, 3, 2, 3, 2, 0, True),  # rectangular kernel, stride 2
    (1, 3, 9, 7, 2, 3, 1, 3, 2, False),  # stride 3, padding 2
    (3, 1, 5, 6, 2, 5, 2, 2, 1, True),  # kernel as tall as the input
    (1, 2, 4, 4, 5, 1, 1, 1, 0, True),  # 1x1 conv
    (2, 2, 3, 4, 2, 4, 4, 1, 2, True),  # kernel larger than the unpadded input
    (1, 1, 6, 6, 1, 2, 2, 4, 0, False),  # stride larger than the kernel (input rows skipped)
    (1, 2, 10, 3, 3, 3, 3, 2, 3, True),  # padding larger than half the kernel
]
LAYER_IDS = [
    f"N{N}C{C}x{H}x{W}-O{O}k{kh}x{kw}s{s}p{p}{'b' if b else ''}" for N, C, H, W, O, kh, kw, s, p, b in LAYER_CASES
]


def layer_arrays(case: tuple, seed: int, dtype: type = np.float64) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    N, C_in, H, W, C_out, kh, kw, _, _, bias = case
    x, w = normal(seed, N, C_in, H, W).astype(dtype), normal(seed + 1, C_out, C_in, kh, kw).astype(dtype)
    return x, w, normal(seed + 2, C_out).astype(dtype) if bias else None


CONV_LAYERS = {"conv2d_layer": ws.conv2d_layer, "conv2d_fast": ws.conv2d_fast}


# =============================================================================================
# Oracle: PyTorch
# =============================================================================================


@pytest.mark.parametrize("name", sorted(CONV_LAYERS))
@pytest.mark.parametrize("case", LAYER_CASES, ids=LAYER_IDS)
def test_conv_layers_match_torch_float64(case: tuple, name: str) -> None:
    torch = torch_or_skip()
    x, w, b = layer_arrays(case, seed=10)
    stride, padding = case[7], case[8]
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b), stride, padding
    ).numpy()
    got = CONV_LAYERS[name](x, w, b, stride=stride, padding=padding)
    assert got.shape == expected.shape
    assert_close_scaled(got, expected, layer_scale(x, w, b, stride, padding), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(CONV_LAYERS))
@pytest.mark.parametrize("case", LAYER_CASES[1:5], ids=LAYER_IDS[1:5])
def test_conv_layers_match_torch_float32(case: tuple, name: str) -> None:
    torch = torch_or_skip()
    x, w, b = layer_arrays(case, seed=20, dtype=np.float32)
    stride, padding = case[7], case[8]
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b), stride, padding
    ).numpy()
    got = CONV_LAYERS[name](x, w, b, stride=stride, padding=padding)
    assert got.dtype in (np.float32, np.float64)
    assert_close_scaled(got, expected, layer_scale(x, w, b, stride, padding), rtol=1e-5)


@st.composite
def layer_draws(draw: st.DrawFn, *, max_padding: int = 2, max_stride: int = 3) -> tuple:
    """(x, weight, bias, stride, padding), integer-valued, with the kernel fitting the padded input."""
    N, C_in, C_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    padding, stride = draw(st.integers(0, max_padding)), draw(st.integers(1, max_stride))
    kh, kw = draw(st.integers(1, min(4, H + 2 * padding))), draw(st.integers(1, min(4, W + 2 * padding)))
    x, w = draw(ints((N, C_in, H, W))), draw(ints((C_out, C_in, kh, kw)))
    b = draw(st.none() | ints((C_out,)))
    return x, w, b, stride, padding


@PROPERTY
@given(case=layer_draws())
def test_conv_layer_matches_torch_on_generated_cases(case: tuple) -> None:
    torch = torch_or_skip()
    x, w, b, stride, padding = case
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(w), None if b is None else torch.from_numpy(b), stride, padding
    ).numpy()
    np.testing.assert_array_equal(ws.conv2d_layer(x, w, b, stride=stride, padding=padding), expected)
    np.testing.assert_array_equal(ws.conv2d_fast(x, w, b, stride=stride, padding=padding), expected)


def test_conv2d_matches_torch() -> None:
    torch = torch_or_skip()
    for seed, (H, W, kh, kw) in enumerate([(5, 5, 3, 3), (4, 7, 2, 5), (6, 3, 6, 1), (1, 1, 1, 1)]):
        image, kernel = normal(seed, H, W), normal(seed + 100, kh, kw)
        expected = torch.nn.functional.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None])
        np.testing.assert_allclose(ws.conv2d(image, kernel), expected[0, 0].numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", LAYER_CASES, ids=LAYER_IDS)
def test_conv2d_backward_matches_autograd(case: tuple) -> None:
    torch = torch_or_skip()
    x, w, b = layer_arrays(case, seed=30)
    stride, padding = case[7], case[8]
    b = normal(33, w.shape[0]) if b is None else b
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out = torch.nn.functional.conv2d(tx, tw, tb, stride, padding)
    dout = normal(34, *out.shape)
    (out * torch.from_numpy(dout)).sum().backward()
    dx, dw, db = ws.conv2d_backward(dout, x, w, stride=stride, padding=padding)
    for got, expected in ((dx, tx.grad), (dw, tw.grad), (db, tb.grad)):
        assert got.shape == tuple(expected.shape)
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-10, atol=1e-10)


def torch_locally_connected(torch: Any, x: Any, weight: Any, bias: Any, stride: int) -> Any:
    """A locally-connected layer built from ``F.unfold`` (torch's own receptive-field extraction)."""
    H_out, W_out, C_out, C_in, kh, kw = weight.shape
    columns = torch.nn.functional.unfold(x, (kh, kw), stride=stride)  # (N, C_in*kh*kw, H_out*W_out)
    filters = weight.reshape(H_out * W_out, C_out, C_in * kh * kw)
    out = torch.einsum("nkl,lok->nol", columns, filters).reshape(x.shape[0], C_out, H_out, W_out)
    return out if bias is None else out + bias.permute(2, 0, 1)[None]


LC_CASES = [  # (N, C_in, H, W, C_out, kh, kw, stride)
    (1, 1, 4, 4, 1, 2, 2, 1),
    (2, 3, 6, 5, 2, 3, 2, 1),
    (2, 2, 7, 8, 3, 3, 3, 2),
    (1, 2, 5, 5, 2, 1, 1, 3),
    (1, 1, 3, 6, 2, 3, 4, 2),
]


@pytest.mark.parametrize("case", LC_CASES)
def test_locally_connected2d_and_backward_match_torch_unfold(case: tuple) -> None:
    torch = torch_or_skip()
    N, C_in, H, W, C_out, kh, kw, stride = case
    H_out, W_out = (H - kh) // stride + 1, (W - kw) // stride + 1
    x, w, b = normal(40, N, C_in, H, W), normal(41, H_out, W_out, C_out, C_in, kh, kw), normal(42, H_out, W_out, C_out)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out = torch_locally_connected(torch, tx, tw, tb, stride)
    expected = out.detach().numpy()
    np.testing.assert_allclose(ws.locally_connected2d(x, w, b, stride=stride), expected, rtol=1e-12, atol=1e-12)
    unbiased = expected - b.transpose(2, 0, 1)[None]
    np.testing.assert_allclose(ws.locally_connected2d(x, w, stride=stride), unbiased, rtol=1e-12, atol=1e-12)
    dout = normal(43, *out.shape)
    (out * torch.from_numpy(dout)).sum().backward()
    dx, dw, db = ws.locally_connected2d_backward(dout, x, w, stride=stride)
    for got, expected in ((dx, tx.grad), (dw, tw.grad), (db, tb.grad)):
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("H", "W", "kh", "kw"), [(5, 5, 3, 3), (4, 6, 1, 5), (6, 3, 5, 3), (3, 3, 7, 7), (7, 2, 3, 1)])
def test_circular_conv2d_matches_torch_circular_padding(H: int, W: int, kh: int, kw: int) -> None:
    torch = torch_or_skip()
    x, w, b = normal(50, 2, 3, H, W), normal(51, 4, 3, kh, kw), normal(52, 4)
    tx = torch.from_numpy(x)
    if kh // 2 <= H and kw // 2 <= W:  # torch's circular padding wraps at most once
        padded = torch.nn.functional.pad(tx, (kw // 2, kw // 2, kh // 2, kh // 2), mode="circular")
    else:  # tile the image with torch and cut out the wrapped neighbourhood
        copies_h, copies_w = -(-(kh // 2) // H), -(-(kw // 2) // W)
        tiled = tx.repeat(1, 1, 2 * copies_h + 1, 2 * copies_w + 1)
        top, left = copies_h * H - kh // 2, copies_w * W - kw // 2
        padded = tiled[:, :, top : top + H + kh - 1, left : left + W + kw - 1]
    expected = torch.nn.functional.conv2d(padded, torch.from_numpy(w), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(ws.circular_conv2d(x, w, b), expected, rtol=1e-12, atol=1e-12)


def torch_network(torch: Any, layers: list[dict[str, Any]], input_shape: tuple[int, ...]) -> list[tuple[tuple, int]]:
    """Per layer, the output shape and parameter count of the equivalent torch modules (meta device)."""
    nn = torch.nn
    rows = []
    with torch.device("meta"):
        x = torch.zeros((1, *input_shape))
        for layer in layers:
            kind = layer["type"]
            if kind == "conv2d":
                module = nn.Conv2d(
                    x.shape[1],
                    layer["out_channels"],
                    layer["kernel_size"],
                    stride=layer.get("stride", 1),
                    padding=layer.get("padding", 0),
                    bias=layer.get("bias", True),
                )
            elif kind in ("maxpool2d", "avgpool2d"):
                pool = nn.MaxPool2d if kind == "maxpool2d" else nn.AvgPool2d
                module = pool(layer["kernel_size"], stride=layer.get("stride", layer["kernel_size"]))
            elif kind == "flatten":
                module = nn.Flatten()
            elif kind == "relu":
                module = nn.ReLU()
            elif kind == "dense":
                module = nn.Linear(x.shape[1], layer["out_features"], bias=layer.get("bias", True))
            else:
                raise AssertionError(f"no torch equivalent for {kind}")
            x = module(x)
            rows.append((tuple(x.shape[1:]), sum(p.numel() for p in module.parameters())))
    return rows


def conv(out_channels: int, kernel_size: Any, **options: Any) -> dict[str, Any]:
    return {"type": "conv2d", "out_channels": out_channels, "kernel_size": kernel_size, **options}


def pool(kernel_size: int, kind: str = "maxpool2d", **options: Any) -> dict[str, Any]:
    return {"type": kind, "kernel_size": kernel_size, **options}


def dense(out_features: int, **options: Any) -> dict[str, Any]:
    return {"type": "dense", "out_features": out_features, **options}


RELU, FLATTEN = {"type": "relu"}, {"type": "flatten"}

LENET5 = [
    conv(6, 5),
    RELU,
    pool(2),
    conv(16, 5),
    RELU,
    pool(2),
    FLATTEN,
    dense(120),
    RELU,
    dense(84),
    RELU,
    dense(10),
]
ALEXNET = [  # torchvision.models.alexnet, without dropout and with the adaptive pool a no-op at 224x224
    conv(64, 11, stride=4, padding=2),
    RELU,
    pool(3, stride=2),
    conv(192, 5, padding=2),
    RELU,
    pool(3, stride=2),
    conv(384, 3, padding=1),
    RELU,
    conv(256, 3, padding=1),
    RELU,
    conv(256, 3, padding=1),
    RELU,
    pool(3, stride=2),
    FLATTEN,
    dense(4096),
    RELU,
    dense(4096),
    RELU,
    dense(1000),
]
VGG16 = [
    *itertools.chain.from_iterable(
        [conv(channels, 3, padding=1), RELU] * repeats + [pool(2)]
        for channels, repeats in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
    ),
    FLATTEN,
    dense(4096),
    RELU,
    dense(4096),
    RELU,
    dense(1000),
]
SMALL_NET = [  # rectangular kernels, strides, padding, avg pooling with its own stride, no biases
    conv(4, (3, 2), stride=2, padding=1, bias=False),
    RELU,
    pool(3, "avgpool2d", stride=1),
    conv(5, (1, 3), padding=2),
    pool(2),
    FLATTEN,
    dense(7, bias=False),
    dense(3),
]


@pytest.mark.parametrize(
    ("layers", "input_shape"),
    [(LENET5, (1, 32, 32)), (SMALL_NET, (3, 13, 11)), (ALEXNET, (3, 224, 224)), (VGG16, (3, 224, 224))],
    ids=["lenet5", "small", "alexnet", "vgg16"],
)
def test_network_summary_matches_torch_modules(layers: list[dict[str, Any]], input_shape: tuple[int, ...]) -> None:
    torch = torch_or_skip()
    assert ws.network_summary(layers, input_shape) == torch_network(torch, layers, input_shape)


# =============================================================================================
# Oracle: SciPy and NumPy
# =============================================================================================


@st.composite
def image_and_kernel(draw: st.DrawFn, max_side: int = 7) -> tuple[np.ndarray, np.ndarray]:
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kh, kw = draw(st.integers(1, H)), draw(st.integers(1, W))
    seed = draw(st.integers(0, 2**32 - 1))
    return normal(seed, H, W), normal(seed + 1, kh, kw)


@PROPERTY
@given(case=image_and_kernel())
def test_conv2d_matches_scipy_correlate2d(case: tuple[np.ndarray, np.ndarray]) -> None:
    signal = pytest.importorskip("scipy.signal")
    image, kernel = case
    expected = signal.correlate2d(image, kernel, mode="valid")
    np.testing.assert_allclose(ws.conv2d(image, kernel), expected, rtol=1e-12, atol=1e-12)


@st.composite
def circular_draws(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Odd kernels, sometimes larger than the image (they then wrap more than once)."""
    N, C_in, C_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    kh, kw = 2 * draw(st.integers(0, 3)) + 1, 2 * draw(st.integers(0, 3)) + 1
    seed = draw(st.integers(0, 2**32 - 1))
    b = normal(seed + 2, C_out) if draw(st.booleans()) else None
    return normal(seed, N, C_in, H, W), normal(seed + 1, C_out, C_in, kh, kw), b


@PROPERTY
@given(case=circular_draws())
def test_circular_conv2d_matches_scipy_ndimage_wrap(case: tuple) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x, w, b = case
    expected = np.zeros((x.shape[0], w.shape[0], *x.shape[2:]))
    for n, o, c in itertools.product(range(x.shape[0]), range(w.shape[0]), range(x.shape[1])):
        # scipy centres an odd kernel at k // 2, as the contract does
        expected[n, o] += ndimage.correlate(x[n, c], w[o, c], mode="wrap")
    if b is not None:
        expected += b[None, :, None, None]
    np.testing.assert_allclose(ws.circular_conv2d(x, w, b), expected, rtol=1e-11, atol=1e-11)


@PROPERTY
@given(case=circular_draws())
def test_circular_conv2d_matches_explicit_fft(case: tuple) -> None:
    x, w, b = case
    _, C_in, H, W = x.shape
    C_out, _, kh, kw = w.shape
    # Fold the centred kernel onto the H x W torus: entry (m, q) acts at offset (m - kh//2, q - kw//2).
    torus = np.zeros((C_out, C_in, H, W))
    for m, q in itertools.product(range(kh), range(kw)):
        torus[:, :, (m - kh // 2) % H, (q - kw // 2) % W] += w[:, :, m, q]
    # circular cross-correlation: spectrum X * conj(K)
    spectrum = np.einsum("nchw,ochw->nohw", np.fft.fft2(x), np.conj(np.fft.fft2(torus)))
    expected = np.fft.ifft2(spectrum).real + (0 if b is None else b[None, :, None, None])
    np.testing.assert_allclose(ws.circular_conv2d(x, w, b), expected, rtol=1e-10, atol=1e-10)


shift_arrays = st.lists(st.integers(1, 5), min_size=2, max_size=4).flatmap(lambda shape: ints(tuple(shape)))


def shift_within(size: int) -> st.SearchStrategy[int]:
    """Mostly shifts that keep part of the content, sometimes ones that move it all out (or around)."""
    return st.integers(-size, size) | st.integers(-3 * size - 2, 3 * size + 2)


@PROPERTY
@given(x=shift_arrays, data=st.data())
def test_shift2d_circular_matches_np_roll(x: np.ndarray, data: st.DataObject) -> None:
    dy, dx = data.draw(shift_within(x.shape[-2])), data.draw(shift_within(x.shape[-1]))
    got = ws.shift2d(x, dy, dx, circular=True)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, np.roll(np.roll(x, dy, axis=-2), dx, axis=-1))


@PROPERTY
@given(x=shift_arrays, data=st.data())
def test_shift2d_zero_fill_matches_scipy_ndimage_shift(x: np.ndarray, data: st.DataObject) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    dy, dx = data.draw(shift_within(x.shape[-2])), data.draw(shift_within(x.shape[-1]))
    expected = ndimage.shift(x, (0,) * (x.ndim - 2) + (dy, dx), order=0, mode="constant", cval=0.0)
    got = ws.shift2d(x, dy, dx)
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, expected)


def test_shift2d_direction_by_hand() -> None:
    x = np.arange(1.0, 7.0).reshape(2, 3)
    np.testing.assert_array_equal(ws.shift2d(x, 1, 0), [[0, 0, 0], [1, 2, 3]])  # down
    np.testing.assert_array_equal(ws.shift2d(x, 0, -1), [[2, 3, 0], [5, 6, 0]])  # left
    np.testing.assert_array_equal(ws.shift2d(x, -1, 1, circular=True), [[6, 4, 5], [3, 1, 2]])  # up, right


def test_shift2d_keeps_float32() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    for circular in (False, True):
        assert ws.shift2d(x, 1, -2, circular=circular).dtype == np.float32


# =============================================================================================
# Oracle: published parameter totals and the lecture's numbers
# =============================================================================================


def total(layers: list[dict[str, Any]], input_shape: tuple[int, ...]) -> int:
    return sum(params for _, params in ws.network_summary(layers, input_shape))


def test_published_totals() -> None:
    assert total(VGG16, (3, 224, 224)) == 138_357_544  # Simonyan & Zisserman; torchvision vgg16
    assert total(ALEXNET, (3, 224, 224)) == 61_100_840  # torchvision alexnet
    assert total(LENET5, (1, 32, 32)) == 61_706  # LeCun et al. 1998, full C3 connections


def test_published_per_layer_numbers() -> None:
    lenet = ws.network_summary(LENET5, (1, 32, 32))
    assert [shape for shape, _ in lenet] == [
        (6, 28, 28),
        (6, 28, 28),
        (6, 14, 14),
        (16, 10, 10),
        (16, 10, 10),
        (16, 5, 5),
        (400,),
        (120,),
        (120,),
        (84,),
        (84,),
        (10,),
    ]
    assert [p for _, p in lenet if p] == [156, 2_416, 48_120, 10_164, 850]
    alexnet = ws.network_summary(ALEXNET, (3, 224, 224))
    assert alexnet[0] == ((64, 55, 55), 23_296)
    assert alexnet[12][0] == (256, 6, 6) and alexnet[13][0] == (9_216,)
    vgg = ws.network_summary(VGG16, (3, 224, 224))
    assert vgg[0] == ((64, 224, 224), 1_792)
    assert [shape for shape, _ in vgg if shape[:1] == (512,) and len(shape) == 3][-1] == (512, 7, 7)
    assert [p for _, p in vgg if p][-3:] == [102_764_544, 16_781_312, 4_097_000]


def test_keras_locally_connected2d_example() -> None:
    # Keras' LocallyConnected2D docs: LocallyConnected2D(64, (3, 3)) on a 32x32x3 input "will consume
    # (30*30)*(3*3*3*64) + (30*30)*64 parameters"; a second LocallyConnected2D(32, (3, 3)) gives 28x28x32.
    # https://www.tensorflow.org/versions/r2.13/api_docs/python/tf/keras/layers/LocallyConnected2D
    assert ws.locally_connected2d_params(32, 3, 64, (3, 3)) == (30 * 30) * (3 * 3 * 3 * 64) + (30 * 30) * 64
    layers = [
        {"type": "locally_connected2d", "out_channels": 64, "kernel_size": 3},
        {"type": "locally_connected2d", "out_channels": 32, "kernel_size": (3, 3)},
    ]
    summary = ws.network_summary(layers, (3, 32, 32))
    assert [shape for shape, _ in summary] == [(64, 30, 30), (32, 28, 28)]
    assert summary[1][1] == (28 * 28) * (3 * 3 * 64 * 32) + (28 * 28) * 32


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((32, 5), 28),  # LeNet-5's C1
        ((224, 11, 4, 2), 55),  # AlexNet's conv1
        ((224, 3, 1, 1), 224),  # VGG's 'same' 3x3 convs
        ((55, 3, 2), 27),  # AlexNet's first max pool
        ((3, 4, 1, 1), 2),  # the kernel fits only thanks to the padding
        ((7, 3, 2), 3),
        ((8, 3, 2), 3),  # the division rounds down
        ((1, 1), 1),
        ((2, 5, 3, 2), 1),
    ],
)
def test_conv_output_size_by_hand(args: tuple[int, ...], expected: int) -> None:
    got = ws.conv_output_size(*args)
    assert type(got) is int and got == expected


def test_lecture_numbers() -> None:
    assert ws.dense_params(1024, 64, bias=False) == 65_536
    assert ws.conv2d_params(1, 8, 3, bias=False) == 72
    assert ws.locally_connected2d_params(224, 1, 1, 3, bias=False) == 443_556 == 3 * 3 * 222 * 222
    assert ws.locally_connected2d_params((224, 224), 1, 1, (3, 3), bias=False) == 443_556


def test_parameter_counts_match_the_arrays_the_layers_use() -> None:
    """The counts equal the sizes of the weight arrays that conv2d_layer / locally_connected2d take."""
    H, W, C_in, C_out, kh, kw, s = 9, 7, 3, 4, 3, 2, 2
    H_out, W_out = ws.conv_output_size(H, kh, s), ws.conv_output_size(W, kw, s)
    lc_w, lc_b = ws.conv_as_locally_connected(np.zeros((C_out, C_in, kh, kw)), np.zeros(C_out), (H_out, W_out))
    assert ws.locally_connected2d(np.zeros((1, C_in, H, W)), lc_w, lc_b, stride=s).shape == (1, C_out, H_out, W_out)
    assert ws.locally_connected2d_params((H, W), C_in, C_out, (kh, kw), stride=s) == lc_w.size + lc_b.size
    assert ws.conv2d_params(C_in, C_out, (kh, kw)) == C_out * C_in * kh * kw + C_out


# =============================================================================================
# Oracle: central differences
# =============================================================================================


def numeric_gradient(loss: Callable[[], float], array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d loss / d array by central differences, perturbing ``array`` in place (restored after)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        up = loss()
        array[index] = saved - eps
        down = loss()
        array[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("case", LAYER_CASES[:5] + LAYER_CASES[6:8], ids=LAYER_IDS[:5] + LAYER_IDS[6:8])
def test_conv2d_backward_matches_central_differences(case: tuple) -> None:
    x, w, _ = layer_arrays(case, seed=60)
    b = normal(63, w.shape[0])
    stride, padding = case[7], case[8]
    dout = normal(64, *ws.conv2d_layer(x, w, b, stride=stride, padding=padding).shape)

    def loss() -> float:
        return float(np.sum(dout * ws.conv2d_layer(x, w, b, stride=stride, padding=padding)))

    dx, dw, db = ws.conv2d_backward(dout, x, w, stride=stride, padding=padding)
    for got, array in ((dx, x), (dw, w), (db, b)):
        np.testing.assert_allclose(got, numeric_gradient(loss, array), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", LC_CASES)
def test_locally_connected2d_backward_matches_central_differences(case: tuple) -> None:
    N, C_in, H, W, C_out, kh, kw, stride = case
    H_out, W_out = (H - kh) // stride + 1, (W - kw) // stride + 1
    x, w, b = normal(70, N, C_in, H, W), normal(71, H_out, W_out, C_out, C_in, kh, kw), normal(72, H_out, W_out, C_out)
    dout = normal(73, N, C_out, H_out, W_out)

    def loss() -> float:
        return float(np.sum(dout * ws.locally_connected2d(x, w, b, stride=stride)))

    dx, dw, db = ws.locally_connected2d_backward(dout, x, w, stride=stride)
    for got, array in ((dx, x), (dw, w), (db, b)):
        np.testing.assert_allclose(got, numeric_gradient(loss, array), rtol=1e-6, atol=1e-6)


# =============================================================================================
# Properties
# =============================================================================================


@st.composite
def tied_draws(draw: st.DrawFn) -> tuple:
    """A conv layer without padding (the locally-connected layer has none), integer-valued."""
    x, w, b, stride, _ = draw(layer_draws(max_padding=0))
    return x, w, b, stride


@PROPERTY
@given(case=tied_draws())
def test_tied_locally_connected_equals_conv(case: tuple) -> None:
    x, w, b, stride = case
    expected = ws.conv2d_layer(x, w, b, stride=stride)
    lc_w, lc_b = ws.conv_as_locally_connected(w, b, expected.shape[2:])
    assert lc_w.shape == (*expected.shape[2:], *w.shape) and lc_w.flags.writeable
    assert (lc_b is None) == (b is None)
    np.testing.assert_array_equal(ws.locally_connected2d(x, lc_w, lc_b, stride=stride), expected)
    lc_w[0, 0] += 1  # a new array: the conv weights are untouched
    assert not np.shares_memory(lc_w, w)


@PROPERTY
@given(case=circular_draws(), data=st.data())
def test_circular_conv_is_exactly_shift_equivariant(case: tuple, data: st.DataObject) -> None:
    x, w, b = case
    x, w = np.round(4 * x), np.round(4 * w)  # integer-valued: every sum is exact, so the error is exactly 0
    b = None if b is None else np.round(4 * b)
    H, W = x.shape[2:]

    def layer(v: np.ndarray) -> np.ndarray:
        return ws.circular_conv2d(v, w, b)

    dy, dx = data.draw(st.integers(-10, 10)), data.draw(st.integers(-10, 10))
    every_shift = [*itertools.product(range(H), range(W)), (dy, dx)]  # every shift modulo (H, W), and one more
    for sy, sx in every_shift:
        assert ws.equivariance_error(layer, x, sy, sx) == 0.0
    assert ws.is_shift_equivariant(layer, x, every_shift, atol=0.0) is True
    # also for generic float weights, up to rounding
    assert ws.equivariance_error(lambda v: ws.circular_conv2d(v, case[1], case[2]), case[0], dy, dx) < 1e-12


@PROPERTY
@given(
    H=st.integers(2, 5),
    W=st.integers(2, 5),
    channels=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_untied_locally_connected_is_not_shift_equivariant(
    H: int, W: int, channels: tuple[int, int], seed: int, data: st.DataObject
) -> None:
    C_in, C_out = channels
    x = normal(seed, 1, C_in, H, W)
    weight = normal(seed + 1, H, W, C_out, C_in, 1, 1)  # 1x1 kernels keep the size; generic weights

    def layer(v: np.ndarray) -> np.ndarray:
        return ws.locally_connected2d(v, weight)

    nontrivial = st.tuples(st.integers(-6, 6), st.integers(-6, 6)).filter(lambda s: (s[0] % H, s[1] % W) != (0, 0))
    dy, dx = data.draw(nontrivial)
    # the definition, computed with np.roll
    error = np.abs(layer(np.roll(x, (dy, dx), axis=(2, 3))) - np.roll(layer(x), (dy, dx), axis=(2, 3))).max()
    assert error > 1e-6
    reported = ws.equivariance_error(layer, x, dy, dx)
    assert type(reported) is float and reported == pytest.approx(error, rel=1e-12)
    assert ws.is_shift_equivariant(layer, x, [(0, 0), (dy, dx)]) is False
    # atol is the largest error still counted as equivariant (inclusive), for every shift in the list
    assert ws.is_shift_equivariant(layer, x, [(0, 0), (dy, dx)], atol=reported) is True
    assert ws.is_shift_equivariant(layer, x, [(0, 0), (dy, dx)], atol=reported * (1 - 1e-9)) is False
    assert ws.is_shift_equivariant(layer, x, [(0, 0), (0, 0), (dy, dx)], atol=1e-3 * reported) is False
    # tying the weights restores equivariance (a 1x1 conv is circular too)
    tied, _ = ws.conv_as_locally_connected(weight[0, 0], None, (H, W))
    assert ws.equivariance_error(lambda v: ws.locally_connected2d(v, tied), x, dy, dx) < 1e-12


@PROPERTY
@given(case=tied_draws())
def test_summed_gradient_identity(case: tuple) -> None:
    x, w, _, stride = case
    out_shape = ws.conv2d_layer(x, w, stride=stride).shape
    dout = np.round(4 * normal(int(np.abs(x).sum()), *out_shape))
    dx_conv, dw_conv, db_conv = ws.conv2d_backward(dout, x, w, stride=stride)
    lc_w, _ = ws.conv_as_locally_connected(w, None, out_shape[2:])
    dx_lc, dw_lc, db_lc = ws.locally_connected2d_backward(dout, x, lc_w, stride=stride)
    assert dw_lc.shape == lc_w.shape and db_lc.shape == (*out_shape[2:], out_shape[1])
    np.testing.assert_array_equal(dw_lc.sum(axis=(0, 1)), dw_conv)  # summed over positions, not averaged
    np.testing.assert_array_equal(db_lc.sum(axis=(0, 1)), db_conv)
    np.testing.assert_array_equal(dx_lc, dx_conv)


@PROPERTY
@given(case=layer_draws(), data=st.data())
def test_conv_layer_is_linear_in_x_and_in_weight(case: tuple, data: st.DataObject) -> None:
    x, w, _, stride, padding = case
    x2, w2 = data.draw(ints(x.shape)), data.draw(ints(w.shape))
    a, c = data.draw(st.integers(-3, 3)), data.draw(st.integers(-3, 3))

    def f(xx: np.ndarray, ww: np.ndarray) -> np.ndarray:
        return ws.conv2d_layer(xx, ww, stride=stride, padding=padding)

    np.testing.assert_array_equal(f(a * x + c * x2, w), a * f(x, w) + c * f(x2, w))
    np.testing.assert_array_equal(f(x, a * w + c * w2), a * f(x, w) + c * f(x, w2))


@PROPERTY
@given(case=layer_draws())
def test_conv2d_fast_equals_conv2d_layer(case: tuple) -> None:
    x, w, b, stride, padding = case
    expected = ws.conv2d_layer(x, w, b, stride=stride, padding=padding)
    got = ws.conv2d_fast(x, w, b, stride=stride, padding=padding)
    assert type(got) is np.ndarray
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("N", [0, 1, 3])
def test_conv2d_fast_takes_a_whole_batch_at_once_as_on_a_gpu(monkeypatch: pytest.MonkeyPatch, N: int) -> None:
    """CuPy's path (one chunk of N images) run here on NumPy: an empty batch used to raise in range()."""
    as_if_gpu = types.ModuleType("numpy_as_if_cupy")
    as_if_gpu.__dict__.update({name: value for name, value in vars(np).items() if not name.startswith("__")})
    monkeypatch.setattr(ws, "_array_module", lambda x: as_if_gpu)
    x, w, b = normal(1, N, 2, 6, 5), normal(2, 3, 2, 3, 2), normal(3, 3)
    for stride, padding in [(1, 0), (2, 1)]:
        expected = ws.conv2d_layer(x, w, b, stride=stride, padding=padding)
        np.testing.assert_allclose(ws.conv2d_fast(x, w, b, stride=stride, padding=padding), expected, atol=1e-12)


@PROPERTY
@given(image=st.tuples(st.integers(1, 7), st.integers(1, 7)).flatmap(ints), data=st.data())
def test_conv2d_is_the_single_channel_layer(image: np.ndarray, data: st.DataObject) -> None:
    kernel = data.draw(ints((data.draw(st.integers(1, image.shape[0])), data.draw(st.integers(1, image.shape[1])))))
    np.testing.assert_array_equal(
        ws.conv2d(image, kernel), ws.conv2d_layer(image[None, None], kernel[None, None])[0, 0]
    )


def frozen(array: np.ndarray) -> np.ndarray:
    """A read-only copy: any write into it raises."""
    array = array.copy()
    array.flags.writeable = False
    return array


@PROPERTY
@given(case=tied_draws(), dy=st.integers(-3, 3), dx=st.integers(-3, 3))
def test_functions_do_not_modify_their_inputs(case: tuple, dy: int, dx: int) -> None:
    x, w, b, stride = case
    x, w, b = frozen(x), frozen(w), None if b is None else frozen(b)
    snapshot = [a.copy() for a in (x, w, b) if a is not None]
    out = ws.conv2d_layer(x, w, b, stride=stride, padding=1)
    ws.conv2d_fast(x, w, b, stride=stride, padding=1)
    dout = frozen(np.ones_like(out))
    ws.conv2d_backward(dout, x, w, stride=stride, padding=1)
    ws.conv2d(x[0, 0], frozen(w[0, 0][: x.shape[2], : x.shape[3]]))
    H_out, W_out = ws.conv2d_layer(x, w, stride=stride).shape[2:]
    lc_w, lc_b = ws.conv_as_locally_connected(w, b, (H_out, W_out))
    lc_w, lc_b = frozen(lc_w), None if lc_b is None else frozen(lc_b)
    ws.locally_connected2d(x, lc_w, lc_b, stride=stride)
    ws.locally_connected2d_backward(frozen(np.ones((x.shape[0], w.shape[0], H_out, W_out))), x, lc_w, stride=stride)
    for circular in (False, True):
        ws.shift2d(x, dy, dx, circular=circular)
    odd = frozen(w[..., : 2 * ((w.shape[2] - 1) // 2) + 1, : 2 * ((w.shape[3] - 1) // 2) + 1])

    def layer(v: np.ndarray) -> np.ndarray:
        return ws.circular_conv2d(v, odd, b)

    ws.equivariance_error(layer, x, dy, dx)
    ws.is_shift_equivariant(layer, x, [(dy, dx), (1, 1)])
    for before, after in zip(snapshot, [a for a in (x, w, b) if a is not None], strict=True):
        np.testing.assert_array_equal(before, after)
    layers = [conv(2, 3, padding=1), RELU, pool(2), FLATTEN, dense(3)]
    original = copy.deepcopy(layers)
    ws.network_summary(layers, (1, 6, 6))
    assert layers == original


def test_float32_inputs_are_accepted() -> None:
    x32, w32, b32 = (a.astype(np.float32) for a in layer_arrays(LAYER_CASES[2], seed=80))
    stride = LAYER_CASES[2][7]
    x64, w64, b64 = (a.astype(np.float64) for a in (x32, w32, b32))
    scale = layer_scale(x64, w64, b64, stride, 1)

    def check(got: np.ndarray, expected: np.ndarray, scale: np.ndarray) -> None:
        assert got.dtype in (np.float32, np.float64)
        assert_close_scaled(got, expected, scale, rtol=1e-5)

    for fn in (ws.conv2d_layer, ws.conv2d_fast):
        check(fn(x32, w32, b32, stride=stride, padding=1), fn(x64, w64, b64, stride=stride, padding=1), scale)
    check(ws.conv2d(x32[0, 0], w32[0, 0]), ws.conv2d(x64[0, 0], w64[0, 0]), ws.conv2d(abs(x64[0, 0]), abs(w64[0, 0])))
    odd = w32[:, :, :1, :]
    odd64 = odd.astype(np.float64)
    check(
        ws.circular_conv2d(x32, odd, b32),
        ws.circular_conv2d(x64, odd64, b64),
        ws.circular_conv2d(np.abs(x64), np.abs(odd64), np.abs(b64)),
    )
    out = ws.conv2d_layer(x64, w64, stride=stride)
    dout32 = np.ones(out.shape, dtype=np.float32)
    for got, expected in zip(
        ws.conv2d_backward(dout32, x32, w32, stride=stride),
        ws.conv2d_backward(dout32.astype(np.float64), x64, w64, stride=stride),
        strict=True,
    ):
        check(got, expected, np.abs(expected) + np.abs(expected).max() + 1.0)
    lc_w32, lc_b32 = ws.conv_as_locally_connected(w32, b32, out.shape[2:])
    assert lc_w32.dtype == np.float32
    check(
        ws.locally_connected2d(x32, lc_w32, lc_b32, stride=stride),
        ws.conv2d_layer(x64, w64, b64, stride=stride),
        layer_scale(x64, w64, b64, stride, 0),
    )
    for got, expected in zip(
        ws.locally_connected2d_backward(dout32, x32, lc_w32, stride=stride),
        ws.locally_connected2d_backward(dout32.astype(np.float64), x64, lc_w32.astype(np.float64), stride=stride),
        strict=True,
    ):
        check(got, expected, np.abs(expected) + np.abs(expected).max() + 1.0)
    assert isinstance(ws.equivariance_error(lambda v: ws.circular_conv2d(v, odd), x32, 1, 2), float)


def test_a_layer_that_changes_the_size_is_not_equivariant() -> None:
    x = normal(90, 1, 2, 5, 6)

    def crop(v: np.ndarray) -> np.ndarray:
        return v[..., 1:, :]

    assert ws.is_shift_equivariant(crop, x, [(1, 0)]) is False
    assert ws.is_shift_equivariant(crop, x, []) is False
    with pytest.raises(ValueError):
        ws.equivariance_error(crop, x, 1, 0)
    # a layer that changes the channels but not the spatial size is fine
    mix = normal(91, 3, 2, 1, 1)
    assert ws.equivariance_error(lambda v: ws.circular_conv2d(v, mix), x, 2, 3) < 1e-12


def ones(*shape: int) -> np.ndarray:
    return np.ones(shape)


CONTRACT_ERRORS = {
    "conv2d: kernel taller than image": lambda: ws.conv2d(ones(3, 3), ones(4, 2)),
    "conv2d: 3-D image": lambda: ws.conv2d(ones(2, 3, 3), ones(2, 2)),
    "conv2d: 1-D kernel": lambda: ws.conv2d(ones(3, 3), ones(2)),
    "conv2d_layer: 3-D x": lambda: ws.conv2d_layer(ones(2, 5, 5), ones(3, 2, 3, 3)),
    "conv2d_layer: channels": lambda: ws.conv2d_layer(ones(1, 2, 5, 5), ones(3, 4, 3, 3)),
    "conv2d_layer: bias": lambda: ws.conv2d_layer(ones(1, 2, 5, 5), ones(3, 2, 3, 3), ones(2)),
    "conv2d_layer: stride 0": lambda: ws.conv2d_layer(ones(1, 1, 4, 4), ones(1, 1, 3, 3), stride=0),
    "conv2d_layer: padding -1": lambda: ws.conv2d_layer(ones(1, 1, 4, 4), ones(1, 1, 3, 3), padding=-1),
    "conv2d_layer: kernel > padded": lambda: ws.conv2d_layer(ones(1, 1, 4, 4), ones(1, 1, 7, 7), padding=1),
    "conv2d_fast: channels": lambda: ws.conv2d_fast(ones(1, 2, 5, 5), ones(3, 4, 3, 3)),
    "conv2d_fast: kernel > padded": lambda: ws.conv2d_fast(ones(1, 1, 4, 4), ones(1, 1, 7, 7), padding=1),
    "conv_output_size: kernel too big": lambda: ws.conv_output_size(3, 6, padding=1),
    "conv_output_size: stride 0": lambda: ws.conv_output_size(5, 3, stride=0),
    "conv_output_size: size 0": lambda: ws.conv_output_size(0, 1),
    "conv_output_size: padding -1": lambda: ws.conv_output_size(5, 3, padding=-1),
    "locally_connected2d_params: kernel too big": lambda: ws.locally_connected2d_params(4, 1, 1, 5),
    "network_summary: unknown type": lambda: ws.network_summary([{"type": "conv3d"}], (1, 8, 8)),
    "network_summary: dense on an image": lambda: ws.network_summary([dense(3)], (1, 8, 8)),
    "network_summary: conv on a flat input": lambda: ws.network_summary([FLATTEN, conv(2, 3)], (1, 8, 8)),
    "network_summary: missing option": lambda: ws.network_summary([{"type": "conv2d", "kernel_size": 3}], (1, 8, 8)),
    "network_summary: kernel too big": lambda: ws.network_summary([conv(2, 9)], (1, 8, 8)),
    "locally_connected2d: positions": lambda: ws.locally_connected2d(ones(1, 1, 4, 4), ones(2, 2, 1, 1, 2, 2)),
    "locally_connected2d: channels": lambda: ws.locally_connected2d(ones(1, 2, 4, 4), ones(3, 3, 1, 1, 2, 2)),
    "locally_connected2d: bias": lambda: ws.locally_connected2d(
        ones(1, 1, 4, 4), ones(3, 3, 1, 1, 2, 2), ones(3, 3, 2)
    ),
    "locally_connected2d: bias (1,1,1)": lambda: ws.locally_connected2d(
        ones(1, 1, 4, 4), ones(3, 3, 1, 1, 2, 2), ones(1, 1, 1)
    ),
    "shift2d: 1-D": lambda: ws.shift2d(ones(3), 1, 1),
    "circular_conv2d: even kernel": lambda: ws.circular_conv2d(ones(1, 1, 4, 4), ones(1, 1, 2, 3)),
    "circular_conv2d: channels": lambda: ws.circular_conv2d(ones(1, 2, 4, 4), ones(1, 1, 3, 3)),
    "circular_conv2d: bias": lambda: ws.circular_conv2d(ones(1, 1, 4, 4), ones(1, 1, 3, 3), ones(2)),
    "conv2d_backward: dout shape": lambda: ws.conv2d_backward(ones(1, 1, 3, 3), ones(1, 1, 4, 4), ones(1, 1, 3, 3)),
    "conv2d_backward: dout (1,1,1,1)": lambda: ws.conv2d_backward(ones(1, 1, 1, 1), ones(1, 1, 4, 4), ones(1, 1, 3, 3)),
    "locally_connected2d_backward: dout shape": lambda: ws.locally_connected2d_backward(
        ones(1, 1, 2, 3), ones(1, 1, 4, 4), ones(3, 3, 1, 1, 2, 2)
    ),
    "locally_connected2d_backward: dout (1,1,3,1)": lambda: ws.locally_connected2d_backward(
        ones(1, 1, 3, 1), ones(1, 1, 4, 4), ones(3, 3, 1, 1, 2, 2)
    ),
}


@pytest.mark.parametrize("call", CONTRACT_ERRORS.values(), ids=CONTRACT_ERRORS.keys())
def test_reference_raises_value_error_where_the_contract_says(call: Callable[[], Any]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        call()
