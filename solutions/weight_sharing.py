# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Weight sharing in convolutional networks
#
# A fully-connected layer gives every (input, output) pair its own weight. A convolutional
# layer does something much more economical: it learns one small filter and applies **the same
# numbers at every position** of the image. This problem set makes that idea precise. You will
#
# 1. implement the convolution a deep-learning library actually computes (Part 1),
# 2. count parameters exactly and check a famous slide against the arithmetic (Part 2),
# 3. build the *unshared* alternative, a locally-connected layer (Part 3),
# 4. test translation equivariance, the property weight sharing buys (Part 4),
# 5. make your convolution fast, optionally on a GPU (Part 5), and
# 6. derive why the gradient of a shared weight is a *sum* over positions (Part 6).
#
# **Rules of the game.** Every function lives in `weight_sharing.py` (this notebook holds the same
# functions). Arrays are NumPy `ndarray`s of a floating dtype; float32 input must work. Never modify
# an input array in place. Where a docstring says `ValueError`, raise one with a message that says
# what is wrong. Shapes are written like `(N, C_in, H, W)`: batch, channels, height, width.
#
# Each task has an id (`Task 1.1`, ...). The same id appears in the stub's error message, in the
# grader's report and in the feedback you get, so you always know which function a message is about.

# %%
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# %% [markdown] tags=["solution-only"]
# The next cell holds helpers that the reference solution uses in several places. They are not
# part of the student release: write your own where you need them.


# %%
### BEGIN SOLUTION
def _check_conv_args(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int, padding: int
) -> tuple[int, int, int, int]:
    """Validate the arguments of a convolutional layer; return ``(N, C_in, H_out, W_out)``.

    Args:
        x: input batch, shape ``(N, C_in, H, W)``.
        weight: filter banks, shape ``(C_out, C_in, kh, kw)``.
        bias: shape ``(C_out,)`` or ``None``.
        stride: ``>= 1``.
        padding: ``>= 0``.

    Returns:
        The batch size, input channels and output height and width.

    Raises:
        ValueError: describing the first problem found.
    """
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C_in, H, W); got {x.ndim} dimensions {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"weight must have shape (C_out, C_in, kh, kw); got {weight.ndim} dimensions {weight.shape}")
    N, C_in, H, W = x.shape
    C_out, C_w, kh, kw = weight.shape
    if C_w != C_in:
        raise ValueError(f"weight expects {C_w} input channels but x has {C_in}")
    if bias is not None and bias.shape != (C_out,):
        raise ValueError(f"bias must have shape ({C_out},) to match weight, got {bias.shape}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    if int(padding) != padding or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    if kh > H + 2 * padding or kw > W + 2 * padding:
        raise ValueError(f"kernel {kh}x{kw} is larger than the padded input {H + 2 * padding}x{W + 2 * padding}")
    return N, C_in, (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """Return ``(value, value)`` for an int, or the pair itself.

    Args:
        value: an int or a pair of ints.

    Returns:
        A pair of ints.
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair (a, b), got {value!r}")
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _lc_windows(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int) -> np.ndarray:
    """Validate a locally-connected layer's arguments and return the input's receptive fields.

    Args:
        x: input batch, shape ``(N, C_in, H, W)``.
        weight: shape ``(H_out, W_out, C_out, C_in, kh, kw)``.
        bias: shape ``(H_out, W_out, C_out)`` or ``None``.
        stride: ``>= 1``.

    Returns:
        A read-only view of shape ``(N, C_in, H_out, W_out, kh, kw)``.

    Raises:
        ValueError: describing the first problem found.
    """
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C_in, H, W); got {x.shape}")
    if weight.ndim != 6:
        raise ValueError(f"weight must have shape (H_out, W_out, C_out, C_in, kh, kw); got {weight.shape}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
    _, C_in, H, W = x.shape
    H_out, W_out, C_out, C_w, kh, kw = weight.shape
    if C_w != C_in:
        raise ValueError(f"weight expects {C_w} input channels but x has {C_in}")
    if kh > H or kw > W:
        raise ValueError(f"kernel {kh}x{kw} does not fit in the input {H}x{W}")
    expected = ((H - kh) // stride + 1, (W - kw) // stride + 1)
    if (H_out, W_out) != expected:
        raise ValueError(
            f"weight has {H_out}x{W_out} positions but a {H}x{W} input with a {kh}x{kw} kernel and "
            f"stride {stride} has {expected[0]}x{expected[1]}"
        )
    if bias is not None and bias.shape != (H_out, W_out, C_out):
        raise ValueError(f"bias must have shape {(H_out, W_out, C_out)}, got {bias.shape}")
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))
    return windows[:, :, ::stride, ::stride]


### END SOLUTION


# %% [markdown]
# ## Part 1 — Convolution, the way deep learning defines it
#
# Slide a small grid of weights (the *kernel* or *filter*, size `kh x kw`) over an image. At each
# placement, multiply the kernel entries with the pixels under them and add everything up. With the
# kernel's top-left corner at pixel `(i, j)`:
#
# $$\text{out}[i, j] = \sum_{m=0}^{k_h-1} \sum_{n=0}^{k_w-1} \text{kernel}[m, n]\; \text{image}[i+m,\, j+n]$$
#
# The kernel only goes where it fits entirely inside the image ("valid" positions), so an
# `H x W` image gives an `(H - kh + 1) x (W - kw + 1)` output.
#
# **A warning about names.** The lecture writes this with the convolution symbol `*`, as PyTorch,
# TensorFlow and most papers do. Strictly, a signal-processing *convolution* first flips the kernel
# (`kernel[kh-1-m, kw-1-n]`); the formula above does **not** flip it, which makes it a
# *cross-correlation*. We follow the formula. Flipping the kernel is the single most common mistake
# in this task, and the grader recognises it.
#
# **Weight sharing is visible in the formula:** `kernel[m, n]` has no `i` or `j` in it. The same nine
# numbers of a 3x3 kernel are used at every output position.


# %%
def conv2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Task 1.1: 2-D cross-correlation of one image with one kernel ('valid' positions only).

    ``out[i, j] = sum_m sum_n kernel[m, n] * image[i + m, j + n]`` (no kernel flip).

    Args:
        image: the input, shape ``(H, W)``.
        kernel: the filter, shape ``(kh, kw)`` with ``kh <= H`` and ``kw <= W``.

    Returns:
        The feature map, shape ``(H - kh + 1, W - kw + 1)``.

    Raises:
        ValueError: if ``image`` or ``kernel`` is not 2-D, or the kernel does not fit in the image.
    """
    ### BEGIN SOLUTION
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(f"conv2d needs a 2-D image and a 2-D kernel, got shapes {image.shape} and {kernel.shape}")
    H, W = image.shape
    kh, kw = kernel.shape
    if kh > H or kw > W:
        raise ValueError(f"kernel of shape {kernel.shape} does not fit in an image of shape {image.shape}")
    H_out, W_out = H - kh + 1, W - kw + 1
    out = np.zeros((H_out, W_out), dtype=np.result_type(image, kernel))
    # One term of the double sum at a time, for every output position at once:
    # kernel[m, n] multiplies the image window whose top-left corner is (m, n).
    for m in range(kh):
        for n in range(kw):
            out += kernel[m, n] * image[m : m + H_out, n : n + W_out]
    return out
    ### END SOLUTION


# %% [markdown]
# ### A real layer: batches, channels, bias, stride and padding
#
# A convolutional layer in a network takes a batch of `N` images with `C_in` channels each
# (red, green, blue, or the feature maps of the previous layer) and produces `C_out` feature maps.
# Each output channel `o` has its own filter *bank* `weight[o]` of shape `(C_in, kh, kw)` that looks at
# all input channels at once, plus one bias `bias[o]`:
#
# $$\text{out}[n, o, i, j] = b[o] + \sum_{c}\sum_{m}\sum_{q} w[o, c, m, q]\;
#     x_{\text{pad}}[n, c,\; i s + m,\; j s + q]$$
#
# * **padding** `p` adds `p` rows/columns of zeros on *all four* sides before sliding;
# * **stride** `s` moves the kernel `s` pixels at a time, in both directions.
#
# The output size along each axis is `(H + 2p - kh) // s + 1`. These are exactly the numbers
# `torch.nn.functional.conv2d` computes, which is one of the oracles the reference is checked against.


# %%
def conv2d_layer(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Task 1.2: a convolutional layer (multi-channel cross-correlation with bias, stride, padding).

    Args:
        x: input batch, shape ``(N, C_in, H, W)``.
        weight: filter banks, shape ``(C_out, C_in, kh, kw)``.
        bias: one bias per output channel, shape ``(C_out,)``, or ``None`` for no bias.
        stride: step between kernel placements, the same along both axes; ``>= 1``.
        padding: zeros added on all four sides of each image; ``>= 0``.

    Returns:
        Output batch, shape ``(N, C_out, H_out, W_out)`` with
        ``H_out = (H + 2 * padding - kh) // stride + 1`` (likewise ``W_out``).

    Raises:
        ValueError: for a wrong number of dimensions, mismatched channels or bias, ``stride < 1``,
            ``padding < 0``, or a kernel larger than the padded input.
    """
    ### BEGIN SOLUTION
    N, _, H_out, W_out = _check_conv_args(x, weight, bias, stride, padding)
    C_out, _, kh, kw = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((N, C_out, H_out, W_out), dtype=np.result_type(x, weight))
    for m in range(kh):
        for q in range(kw):
            # x_pad[n, c, i*s + m, j*s + q] for all (n, c, i, j) at once.
            window = xp[:, :, m : m + stride * (H_out - 1) + 1 : stride, q : q + stride * (W_out - 1) + 1 : stride]
            out += np.einsum("ncij,oc->noij", window, weight[:, :, m, q])
    if bias is not None:
        out += bias[None, :, None, None]
    return out
    ### END SOLUTION


# %% [markdown]
# ### Worked example
#
# A vertical-edge detector responds where the image goes from dark to bright, left to right.
# Because the formula does not flip the kernel, `[-1, 1]` means "right pixel minus left pixel".

# %%
step = np.array([[0.0, 0.0, 1.0, 1.0]] * 3)  # dark on the left, bright on the right
edge = np.array([[-1.0, 1.0]])
print(conv2d(step, edge))  # the edge sits between columns 1 and 2

# %% [markdown]
# ### Figure: a photograph through an edge filter
#
# Now a real image: Grace Hopper, one of the sample pictures that come with matplotlib, in
# grayscale. The filter `vertical` is the `[-1, 1]` idea from above, widened to 3x3: right column
# minus left column, averaged over three rows. Its entries add up to zero, so wherever the image is
# flat (cheek, background) the output is zero; only where brightness changes from left to right does
# it respond. Its transpose, `horizontal`, finds changes from top to bottom. We plot the absolute
# value, so bright means "strong edge" whichever way the brightness goes. The flagpole and the sides
# of the face light up in the middle panel; the brim of the cap, the glasses and the mouth in the
# right one. Each filter is just nine numbers, reused at all 75,000 positions.
#
# (In your copy this cell raises `NotImplementedError` until `conv2d` works.)

# %%
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.cbook import get_sample_data  # noqa: E402

rgb = plt.imread(get_sample_data("grace_hopper.jpg", asfileobj=False))
photo = rgb[::2, ::2] @ np.array([0.299, 0.587, 0.114]) / 255  # grayscale in [0, 1], 300 x 256
vertical = np.array([[-1.0, 0.0, 1.0]] * 3) / 3
horizontal = vertical.T
panels = [
    ("photo", photo),
    ("|conv2d(photo, vertical)|", np.abs(conv2d(photo, vertical))),
    ("|conv2d(photo, horizontal)|", np.abs(conv2d(photo, horizontal))),
]
fig, axes = plt.subplots(1, 3, figsize=(11, 4.4), layout="constrained")
for ax, (title, picture) in zip(axes, panels, strict=True):
    ax.imshow(picture, cmap="gray", vmin=0, vmax=1 if picture is photo else 0.25)
    ax.set_title(title)
    ax.axis("off")
plt.show()

# %% [markdown] tags=["self-check"]
# ### Check Part 1
#
# Run the grader's public tests for Part 1, in its sandbox. **Save the notebook first** (Ctrl+S /
# Cmd+S): `wsgrade check` grades the notebook *file* on disk, not the functions that live in this
# kernel. `-k test_part1` keeps only this part's tests; drop it to check everything. In a terminal the
# same check is `wsgrade check weight_sharing.ipynb -k test_part1`.
#
# The grader runs every code cell outside Jupyter and grades only your functions: it skips shell
# lines like the one below, and cells that fail there (the examples and figures of tasks you have
# not finished yet) are listed as notes and ignored.

# %% tags=["self-check"]
# !wsgrade check weight_sharing.ipynb -k test_part1

# %% [markdown]
# ## Part 2 — Counting parameters
#
# The lecture's central quantitative claim is that sharing weights saves parameters. Let us make it
# exact. For a layer that maps `C_in` channels to `C_out` channels with a `kh x kw` kernel:
#
# | layer | weights | biases |
# |---|---|---|
# | dense, `F_in -> F_out` | `F_in * F_out` | `F_out` |
# | convolution (shared) | `C_out * C_in * kh * kw` | `C_out` |
# | locally connected (unshared) | `H_out * W_out * C_out * C_in * kh * kw` | `H_out * W_out * C_out` |
#
# The conv layer's count does not depend on the image size at all; the locally-connected layer
# pays for every output position separately. (We follow Keras' `LocallyConnected2D`: 'valid'
# positions only, and one bias per output position and channel.)
#
# **Check the slide.** The lecture says a 224x224 image with a 3x3 filter and no sharing needs
# "3 x 3 x 222 x 222 parameters per filter, about 148,000". The product it writes down is
# 443,556, three times larger. Your `locally_connected2d_params((224, 224), 1, 1, 3, bias=False)`
# must give the right number. The other numbers on the slide are right: a dense layer from 1,024
# inputs to 64 outputs has 65,536 weights, eight 3x3 filters have 72, a ratio of about 910.


# %%
def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Task 2.1: output length of a convolution or pooling along one axis.

    Args:
        size: input length, ``>= 1``.
        kernel_size: kernel length, ``>= 1``.
        stride: step, ``>= 1``.
        padding: zeros added at each end, ``>= 0``.

    Returns:
        ``(size + 2 * padding - kernel_size) // stride + 1``.

    Raises:
        ValueError: if an argument is out of range or the kernel does not fit (result < 1).
    """
    ### BEGIN SOLUTION
    for name, value, low in (
        ("size", size, 1),
        ("kernel_size", kernel_size, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if size + 2 * padding < kernel_size:
        raise ValueError(
            f"a kernel of size {kernel_size} does not fit in an input of size {size} with padding {padding}"
        )
    return int((size + 2 * padding - kernel_size) // stride + 1)
    ### END SOLUTION


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Task 2.2: number of parameters of a fully-connected (dense) layer.

    Args:
        in_features: inputs per example.
        out_features: outputs per example.
        bias: whether the layer has one bias per output.

    Returns:
        ``in_features * out_features`` weights, plus ``out_features`` biases if ``bias``.
    """
    ### BEGIN SOLUTION
    return in_features * out_features + (out_features if bias else 0)
    ### END SOLUTION


def conv2d_params(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], bias: bool = True) -> int:
    """Task 2.3: number of parameters of a 2-D convolutional layer (weights shared over positions).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``, the number of filters.
        kernel_size: ``k`` for a square ``k x k`` kernel, or a pair ``(kh, kw)``.
        bias: whether each filter has a bias.

    Returns:
        ``C_out * C_in * kh * kw``, plus ``C_out`` if ``bias``.
    """
    ### BEGIN SOLUTION
    kh, kw = _pair(kernel_size)
    return out_channels * in_channels * kh * kw + (out_channels if bias else 0)
    ### END SOLUTION


def locally_connected2d_params(
    input_size: int | tuple[int, int],
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    stride: int = 1,
    bias: bool = True,
) -> int:
    """Task 2.4: number of parameters of a locally-connected layer (no weight sharing).

    One filter bank per output position, 'valid' positions only, and one bias per output position
    and channel (as Keras' ``LocallyConnected2D``).

    Args:
        input_size: ``H`` for a square input, or ``(H, W)``.
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: ``k`` or ``(kh, kw)``.
        stride: step between positions, ``>= 1``.
        bias: whether there are biases.

    Returns:
        ``H_out * W_out * C_out * C_in * kh * kw``, plus ``H_out * W_out * C_out`` if ``bias``.

    Raises:
        ValueError: if the kernel does not fit in the input or an argument is out of range.
    """
    ### BEGIN SOLUTION
    H, W = _pair(input_size)
    kh, kw = _pair(kernel_size)
    positions = conv_output_size(H, kh, stride) * conv_output_size(W, kw, stride)
    return positions * out_channels * (in_channels * kh * kw + (1 if bias else 0))
    ### END SOLUTION


# %% [markdown]
# ### Whole networks
#
# `network_summary` walks through a list of layers, tracking the shape of the activation and the
# parameters of each layer, like `torchsummary` or Keras' `model.summary()`. Shapes are `(C, H, W)`
# for images and `(F,)` after a `flatten`. With it you can check published totals yourself:
# VGG-16 has 138,357,544 parameters, AlexNet (torchvision's layout) 61,100,840 and LeNet-5 61,706.
# Nearly all of VGG-16's parameters sit in its three dense layers, not in its thirteen conv layers.


# %%
def network_summary(
    layers: Sequence[dict[str, Any]], input_shape: tuple[int, ...]
) -> list[tuple[tuple[int, ...], int]]:
    """Task 2.5: output shape and parameter count of every layer of a sequential network.

    Each layer is a dict with a ``"type"`` and its options:

    * ``conv2d``: ``out_channels``, ``kernel_size`` (int or pair), ``stride=1``, ``padding=0``, ``bias=True``
    * ``locally_connected2d``: ``out_channels``, ``kernel_size``, ``stride=1``, ``bias=True``
    * ``maxpool2d`` / ``avgpool2d``: ``kernel_size`` (int), ``stride=kernel_size``; no parameters
    * ``flatten``: ``(C, H, W) -> (C * H * W,)``; ``relu``: shape unchanged; both no parameters
    * ``dense``: ``out_features``, ``bias=True``; needs a flat input ``(F,)``

    Args:
        layers: the layers, first to last.
        input_shape: the shape of one input example, ``(C, H, W)``.

    Returns:
        One ``(output_shape, params)`` pair per layer, ``output_shape`` a tuple of ints.

    Raises:
        ValueError: for an unknown layer type, a missing option, or a shape the layer cannot take.
    """
    ### BEGIN SOLUTION
    shape = tuple(int(s) for s in input_shape)
    summary = []
    for index, layer in enumerate(layers):
        kind = layer.get("type")
        try:
            if kind in ("conv2d", "locally_connected2d", "maxpool2d", "avgpool2d"):
                if len(shape) != 3:
                    raise ValueError(f"needs an image input (C, H, W), got {shape}")
                C, H, W = shape
                kh, kw = _pair(layer["kernel_size"])
                if kind == "conv2d":
                    s, p = layer.get("stride", 1), layer.get("padding", 0)
                    shape = (layer["out_channels"], conv_output_size(H, kh, s, p), conv_output_size(W, kw, s, p))
                    params = conv2d_params(C, layer["out_channels"], (kh, kw), layer.get("bias", True))
                elif kind == "locally_connected2d":
                    s = layer.get("stride", 1)
                    shape = (layer["out_channels"], conv_output_size(H, kh, s), conv_output_size(W, kw, s))
                    params = locally_connected2d_params(
                        (H, W), C, layer["out_channels"], (kh, kw), s, layer.get("bias", True)
                    )
                else:
                    s = layer.get("stride", layer["kernel_size"])
                    shape = (C, conv_output_size(H, kh, s), conv_output_size(W, kw, s))
                    params = 0
            elif kind == "flatten":
                shape, params = (int(np.prod(shape)),), 0
            elif kind == "relu":
                params = 0
            elif kind == "dense":
                if len(shape) != 1:
                    raise ValueError(f"needs a flat input (F,), got {shape}; add a 'flatten' layer first")
                params = dense_params(shape[0], layer["out_features"], layer.get("bias", True))
                shape = (layer["out_features"],)
            else:
                raise ValueError(f"unknown layer type {kind!r}")
        except KeyError as missing:
            raise ValueError(f"layer {index} ({kind}) is missing the option {missing}") from None
        except ValueError as problem:
            raise ValueError(f"layer {index} ({kind}): {problem}") from None
        summary.append((tuple(int(s) for s in shape), int(params)))
    return summary
    ### END SOLUTION


# %% [markdown]
# ### Worked example: LeNet-5, and where VGG-16 keeps its parameters

# %%
lenet5 = [
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
for layer, (shape, params) in zip(lenet5, network_summary(lenet5, (1, 32, 32)), strict=True):
    print(f"{layer['type']:>10}  {shape!s:>14}  {params:>7,}")
print("total", sum(p for _, p in network_summary(lenet5, (1, 32, 32))))
print(
    "dense 1024 -> 64:", dense_params(1024, 64, bias=False), " eight 3x3 filters:", conv2d_params(1, 8, 3, bias=False)
)
print("no sharing, 224x224, one 3x3 filter:", locally_connected2d_params(224, 1, 1, 3, bias=False))

# %% [markdown]
# ### Figure: how the counts grow with the image
#
# Take an `n x n` grayscale image and a layer that produces one feature map of the size a 3x3 kernel
# gives, `(n-2) x (n-2)`. A dense layer connects every pixel to every output: about `n^4` weights.
# A locally-connected layer has its own 3x3 filter (and bias) per output position: about `10 n^2`.
# The convolution has 9 weights and a bias whatever `n` is. On log-log axes a power law `n^k` is a
# straight line of slope `k`, so the three layers show up as slopes 4, 2 and 0. The dotted line
# marks the slide's 224x224 image.

# %%
sides = np.unique(np.geomspace(3, 1024, 40).astype(int))
counts = {
    "dense (every pixel to every output)": [dense_params(n * n, conv_output_size(n, 3) ** 2) for n in sides],
    "locally connected, 3x3": [locally_connected2d_params(n, 1, 1, 3) for n in sides],
    "convolution, 3x3": [conv2d_params(1, 1, 3) for n in sides],
}
fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
for label, values in counts.items():
    ax.loglog(sides, values, marker=".", label=label)
ax.axvline(224, color="gray", linestyle=":")
ax.set_xlabel("image side n  (n x n pixels, one channel in, one out)")
ax.set_ylabel("parameters")
ax.set_title("parameters of one layer against input size")
ax.grid(True, which="major", alpha=0.3)
ax.legend()
plt.show()

# %% [markdown] tags=["self-check"]
# ### Check Part 2
#
# Save the notebook, then run the grader's public tests for Part 2.

# %% tags=["self-check"]
# !wsgrade check weight_sharing.ipynb -k test_part2

# %% [markdown]
# ## Part 3 — Locally-connected layers: the same wiring, no sharing
#
# What if every output position had its *own* filter? That is a **locally-connected** layer: the
# same local receptive fields as a convolution, but `weight[i, j]` is a separate filter bank for
# output position `(i, j)`:
#
# $$\text{out}[n, o, i, j] = b[i, j, o] + \sum_{c, m, q} w[i, j, o, c, m, q]\; x[n, c,\; i s + m,\; j s + q]$$
#
# Such layers were used for face recognition (DeepFace), where eyes and mouths sit at roughly fixed
# positions, so a detector need not work everywhere. A convolution is the special case where all
# `weight[i, j]` are equal — *tied*. `conv_as_locally_connected` builds exactly that tied layer, and
# the two layers must then agree to the last digit.


# %%
def locally_connected2d(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride: int = 1
) -> np.ndarray:
    """Task 3.1: a locally-connected layer — a convolution whose filters differ at every position.

    ``out[n, o, i, j] = sum_{c,m,q} weight[i, j, o, c, m, q] * x[n, c, i*stride + m, j*stride + q] + bias[i, j, o]``.
    No padding.

    Args:
        x: input batch, shape ``(N, C_in, H, W)``.
        weight: one filter bank per output position, shape ``(H_out, W_out, C_out, C_in, kh, kw)`` with
            ``H_out = (H - kh) // stride + 1`` and ``W_out = (W - kw) // stride + 1``.
        bias: shape ``(H_out, W_out, C_out)``, or ``None``.
        stride: step between positions, ``>= 1``.

    Returns:
        Output batch, shape ``(N, C_out, H_out, W_out)``.

    Raises:
        ValueError: if weight's positions do not match the input, or channels or bias mismatch.
    """
    ### BEGIN SOLUTION
    windows = _lc_windows(x, weight, bias, stride)  # (N, C_in, H_out, W_out, kh, kw)
    out = np.einsum("ncijmq,ijocmq->noij", windows, weight)
    if bias is not None:
        out = out + bias.transpose(2, 0, 1)[None]
    return out
    ### END SOLUTION


def conv_as_locally_connected(
    weight: np.ndarray, bias: np.ndarray | None, output_size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """Task 3.2: the locally-connected layer whose filters are all tied to one conv filter bank.

    Args:
        weight: conv filter banks, shape ``(C_out, C_in, kh, kw)``.
        bias: conv biases, shape ``(C_out,)``, or ``None``.
        output_size: ``H_out`` for a square output, or ``(H_out, W_out)``.

    Returns:
        ``(lc_weight, lc_bias)``: ``lc_weight`` of shape ``(H_out, W_out, C_out, C_in, kh, kw)`` with
        ``lc_weight[i, j] == weight`` everywhere, and ``lc_bias`` of shape ``(H_out, W_out, C_out)``
        (``None`` when ``bias`` is ``None``). Both are new, writeable arrays.
    """
    ### BEGIN SOLUTION
    H_out, W_out = _pair(output_size)
    lc_weight = np.broadcast_to(weight, (H_out, W_out) + weight.shape).copy()
    lc_bias = None if bias is None else np.broadcast_to(bias, (H_out, W_out) + bias.shape).copy()
    return lc_weight, lc_bias
    ### END SOLUTION


# %% [markdown]
# ### Worked example: tied weights give back the convolution

# %%
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 6, 6))
w = rng.standard_normal((4, 3, 3, 3))
b = rng.standard_normal(4)
lc_w, lc_b = conv_as_locally_connected(w, b, 4)
print("max difference, tied LC vs conv:", np.abs(locally_connected2d(x, lc_w, lc_b) - conv2d_layer(x, w, b)).max())
print("parameters: conv", w.size + b.size, " locally connected", lc_w.size + lc_b.size)

# %% [markdown] tags=["self-check"]
# ### Check Part 3
#
# Save the notebook, then run the grader's public tests for Part 3.

# %% tags=["self-check"]
# !wsgrade check weight_sharing.ipynb -k test_part3

# %% [markdown]
# ## Part 4 — Shift tests: translation equivariance
#
# "If we shift the input, the output shifts accordingly." A layer `f` is **shift-equivariant** when
# shifting and then applying `f` gives the same result as applying `f` and then shifting:
#
# $$f(\text{shift}(x)) = \text{shift}(f(x)).$$
#
# Shifting needs care at the border: content moved out of the image is lost and zeros come in.
# A clean way to get an *exact* statement is to shift **circularly** (what leaves on the right
# comes back on the left, like `np.roll`) and to use a convolution that also wraps around, so no
# position is special. Then a convolution is exactly equivariant — because its weights are shared —
# and a locally-connected layer, whose weights depend on the position, is not.
#
# Conventions used throughout: `shift2d(x, dy, dx)` moves the content `dy` rows **down** and `dx`
# columns **right** (negative values move up and left), acting on the last two axes.


# %%
def shift2d(x: np.ndarray, dy: int, dx: int, circular: bool = False) -> np.ndarray:
    """Task 4.1: shift the content of the last two axes by ``dy`` rows down and ``dx`` columns right.

    Args:
        x: an array with at least two dimensions, shape ``(..., H, W)``.
        dy: rows to move down (negative: up). Any integer.
        dx: columns to move right (negative: left). Any integer.
        circular: if True, content that leaves one side comes back on the other (as ``np.roll``);
            otherwise the vacated cells are 0.

    Returns:
        A new array with the same shape and dtype as ``x``.

    Raises:
        ValueError: if ``x`` has fewer than two dimensions.
    """
    ### BEGIN SOLUTION
    if x.ndim < 2:
        raise ValueError(f"shift2d needs an array with at least 2 dimensions, got shape {x.shape}")
    if circular:
        return np.roll(x, (dy, dx), axis=(-2, -1))
    H, W = x.shape[-2:]
    out = np.zeros_like(x)
    if abs(dy) >= H or abs(dx) >= W:
        return out
    rows_dst, rows_src = slice(max(dy, 0), H + min(dy, 0)), slice(max(-dy, 0), H - max(dy, 0))
    cols_dst, cols_src = slice(max(dx, 0), W + min(dx, 0)), slice(max(-dx, 0), W - max(dx, 0))
    out[..., rows_dst, cols_dst] = x[..., rows_src, cols_src]
    return out
    ### END SOLUTION


def circular_conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Task 4.2: 'same'-size convolution layer with wrap-around (circular) padding.

    ``out[n, o, i, j] = sum_{c,m,q} weight[o, c, m, q] * x[n, c, (i + m - kh//2) % H, (j + q - kw//2) % W] + bias[o]``

    Args:
        x: input batch, shape ``(N, C_in, H, W)``.
        weight: filter banks, shape ``(C_out, C_in, kh, kw)`` with odd ``kh`` and ``kw``.
        bias: shape ``(C_out,)``, or ``None``.

    Returns:
        Output batch, shape ``(N, C_out, H, W)``.

    Raises:
        ValueError: for even kernel sizes, a wrong number of dimensions, or mismatched channels or bias.
    """
    ### BEGIN SOLUTION
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"need x (N, C_in, H, W) and weight (C_out, C_in, kh, kw); got shapes {x.shape} and {weight.shape}"
        )
    if weight.shape[1] != x.shape[1]:
        raise ValueError(f"weight expects {weight.shape[1]} input channels but x has {x.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"bias must have shape ({weight.shape[0]},) to match weight, got {bias.shape}")
    C_out, _, kh, kw = weight.shape
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"circular_conv2d needs odd kernel sizes so that the output is centred, got {kh}x{kw}")
    out = np.zeros((x.shape[0], C_out) + x.shape[2:], dtype=np.result_type(x, weight))
    for m in range(kh):
        for q in range(kw):
            # rolled[..., i, j] = x[..., (i + m - kh//2) % H, (j + q - kw//2) % W]
            rolled = np.roll(x, (kh // 2 - m, kw // 2 - q), axis=(2, 3))
            out += np.einsum("ncij,oc->noij", rolled, weight[:, :, m, q])
    if bias is not None:
        out += bias[None, :, None, None]
    return out
    ### END SOLUTION


def equivariance_error(layer: Callable[[np.ndarray], np.ndarray], x: np.ndarray, dy: int, dx: int) -> float:
    """Task 4.3: how far ``layer`` is from commuting with a circular shift by ``(dy, dx)``.

    Args:
        layer: a function from an array ``(..., H, W)`` to an array ``(..., H, W)``.
        x: the input, shape ``(..., H, W)``.
        dy: rows to shift down.
        dx: columns to shift right.

    Returns:
        ``max |layer(shift2d(x, dy, dx, circular=True)) - shift2d(layer(x), dy, dx, circular=True)|``.

    Raises:
        ValueError: if ``layer`` changes the spatial size ``(H, W)``.
    """
    ### BEGIN SOLUTION
    y = layer(x)
    if y.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"the layer changes the spatial size from {x.shape[-2:]} to {y.shape[-2:]}")
    shifted_first = layer(shift2d(x, dy, dx, circular=True))
    return float(np.max(np.abs(shifted_first - shift2d(y, dy, dx, circular=True))))
    ### END SOLUTION


def is_shift_equivariant(
    layer: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    shifts: Sequence[tuple[int, int]],
    atol: float = 1e-8,
) -> bool:
    """Task 4.4: whether ``layer`` commutes with every circular shift in ``shifts``, on input ``x``.

    Args:
        layer: a function from an array ``(..., H, W)`` to an array.
        x: the input, shape ``(..., H, W)``.
        shifts: the ``(dy, dx)`` pairs to try.
        atol: the largest equivariance error still counted as equivariant.

    Returns:
        True iff ``equivariance_error(layer, x, dy, dx) <= atol`` for every pair; False for a layer
        that changes the spatial size.
    """
    ### BEGIN SOLUTION
    if layer(x).shape[-2:] != x.shape[-2:]:
        return False
    return all(equivariance_error(layer, x, dy, dx) <= atol for dy, dx in shifts)
    ### END SOLUTION


# %% [markdown]
# ### Worked example: shared weights commute with shifts, unshared ones do not

# %%
x = rng.standard_normal((1, 2, 8, 8))
w = rng.standard_normal((3, 2, 3, 3))
conv = lambda v: circular_conv2d(v, w)  # noqa: E731
untied = rng.standard_normal((8, 8, 3, 2, 1, 1))
local = lambda v: locally_connected2d(v, untied)  # noqa: E731  (1x1 kernel: size is kept)
print("circular conv:", equivariance_error(conv, x, 2, -3))
print("locally connected:", equivariance_error(local, x, 2, -3))
print("equivariant?", is_shift_equivariant(conv, x, [(1, 0), (0, 1), (3, 5)]), is_shift_equivariant(local, x, [(1, 0)]))

# %% [markdown]
# ### Figure: equivariance you can see
#
# Shift the photograph 40 rows down and 60 columns right (zeros come in at the top and left), then
# apply the vertical-edge filter from Part 1. Compare that with filtering first and shifting the
# feature map afterwards. The two maps are the same picture: the filter does not know *where* it
# is, so moving the input moves the output. The right panel is their difference. It is exactly zero
# except for a thin line two pixels wide along the edge of the black border: there the filter
# straddles the border in one order and not in the other. That border effect is why the tests
# below use circular shifts, where nothing enters or leaves the image.

# %%
dy, dx = 40, 60
filter_then_shift = shift2d(conv2d(photo, vertical), dy, dx)
shift_then_filter = conv2d(shift2d(photo, dy, dx), vertical)
difference = np.abs(shift_then_filter - filter_then_shift)
panels = [
    ("shift2d(photo)", shift2d(photo, dy, dx), 1),
    ("conv2d(shift2d(photo))", np.abs(shift_then_filter), 0.25),
    ("shift2d(conv2d(photo))", np.abs(filter_then_shift), 0.25),
    (f"|difference|: {difference[dy:, dx:].max():g} inside the photo", difference, 0.25),
]
fig, axes = plt.subplots(1, 4, figsize=(14, 4.2), layout="constrained")
for ax, (title, picture, top) in zip(axes, panels, strict=True):
    ax.imshow(picture, cmap="gray", vmin=0, vmax=top, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# ### Figure: equivariance error, shared against unshared weights
#
# Three layers with a 3x3 receptive field on a 24x24 input, all with wrap-around borders:
# `circular_conv2d`; a locally-connected layer whose filters are all tied to the conv filter
# (`conv_as_locally_connected`, applied to the input padded with `np.pad(..., mode="wrap")`); and the
# same locally-connected layer with a different random filter at every position. Left: the
# equivariance error against the size of a horizontal circular shift. The two shared-weight layers
# stay at zero for every shift (they are the same layer written two ways); the untied layer is far
# off for every shift except 0 and 24, which move nothing. Right: start from the tied filters and
# add noise of growing size to each position's copy. The error grows in proportion to the noise:
# equivariance is a property of the *sharing*, and it degrades as the copies drift apart.

# %%
side = 24
x = rng.standard_normal((1, 1, side, side))
w = rng.standard_normal((1, 1, 3, 3))
wrap = lambda v: np.pad(v, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="wrap")  # noqa: E731
tied, _ = conv_as_locally_connected(w, None, side)
untied = rng.standard_normal(tied.shape)
layers = {
    "convolution (circular_conv2d)": lambda v: circular_conv2d(v, w),
    "locally connected, tied filters": lambda v: locally_connected2d(wrap(v), tied),
    "locally connected, a filter per position": lambda v: locally_connected2d(wrap(v), untied),
}
shifts = range(side + 1)
errors = {label: [equivariance_error(layer, x, 0, s) for s in shifts] for label, layer in layers.items()}
noise_levels = np.geomspace(1e-4, 1, 9)
untying = [
    equivariance_error(lambda v, lc=tied + level * untied: locally_connected2d(wrap(v), lc), x, 0, 5)
    for level in noise_levels
]
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.3), layout="constrained")
for (label, error), style in zip(errors.items(), ["o-", "x--", "s-"], strict=True):
    left.plot(shifts, error, style, label=label, markersize=4)
left.set_xlabel("circular shift dx (columns), dy = 0")
left.set_ylabel("equivariance error  max |f(shift x) - shift f(x)|")
left.set_title("shared against unshared weights")
left.legend()
right.loglog(noise_levels, untying, "o-", color="C2")
right.set_xlabel("size of the noise added to each position's copy of the filter")
right.set_ylabel("equivariance error at dx = 5")
right.set_title("untying the weights breaks equivariance gradually")
for ax in (left, right):
    ax.grid(True, alpha=0.3)
plt.show()

# %% [markdown] tags=["self-check"]
# ### Check Part 4
#
# Save the notebook, then run the grader's public tests for Part 4.

# %% tags=["self-check"]
# !wsgrade check weight_sharing.ipynb -k test_part4

# %% [markdown]
# ## Part 5 — The performance task: a fast convolution, on the CPU or a GPU
#
# Your `conv2d_layer` probably loops over the kernel (or worse, over every output pixel). Real
# libraries reorganise the computation so that almost all the work is **one big matrix product**,
# which BLAS (CPU) or cuBLAS (GPU) run close to the hardware's peak:
#
# 1. *im2col*: copy every receptive field into a column of a matrix of shape
#    `(C_in * kh * kw, H_out * W_out)` per image. Weight sharing is what makes this possible —
#    every column is multiplied by the *same* weights.
# 2. Multiply: `weight.reshape(C_out, C_in * kh * kw) @ columns` gives all outputs at once.
#
# Write `conv2d_fast` with the same contract as `conv2d_layer`, without Python loops over pixels.
# It is graded on correctness first, then on speed **relative to the reference measured on the same
# machine in the same run**, so a slow laptop does not cost you points. If the input is a CuPy array,
# compute on the GPU and return a CuPy array; `_array_module` shows how to write the code once for
# both libraries.


# %%
def _array_module(x: Any) -> Any:
    """Return ``cupy`` for a CuPy array and ``numpy`` otherwise.

    Args:
        x: an array.

    Returns:
        The array library ``x`` belongs to.
    """
    if type(x).__module__.split(".")[0] == "cupy":
        import cupy  # only imported when a CuPy array is passed in

        return cupy
    return np


def conv2d_fast(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int = 1,
    padding: int = 0,
) -> np.ndarray:
    """Task 5.1: ``conv2d_layer``, vectorised (im2col + matrix product); CuPy in, CuPy out.

    Args:
        x: input batch, shape ``(N, C_in, H, W)`` (NumPy or CuPy).
        weight: filter banks, shape ``(C_out, C_in, kh, kw)``.
        bias: shape ``(C_out,)``, or ``None``.
        stride: ``>= 1``.
        padding: ``>= 0``.

    Returns:
        Output batch, shape ``(N, C_out, H_out, W_out)``, the same array library as ``x``.

    Raises:
        ValueError: as ``conv2d_layer``.
    """
    ### BEGIN SOLUTION
    xp = _array_module(x)
    N, C_in, H_out, W_out = _check_conv_args(x, weight, bias, stride, padding)
    C_out, _, kh, kw = weight.shape
    K = C_in * kh * kw
    dtype = xp.result_type(x, weight)
    w2d = weight.reshape(C_out, K).astype(dtype, copy=False)
    b4d = None if bias is None else bias.reshape(1, C_out, 1, 1).astype(dtype, copy=False)
    if padding:
        x = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    # The matrix of receptive fields has one row per (c, m, q) and one column per output pixel
    # (n, i, j), so that ONE matrix product computes a whole chunk of the batch, which BLAS runs
    # near the machine's peak. Chunks of about 2**19 entries stay in the CPU's cache between the
    # copy and the product (20-30% faster than the whole batch at once); a GPU takes it all at once.
    chunk = max(1, N if xp is not np else 2**19 // (K * H_out * W_out))  # >= 1: N may be 0
    columns = xp.empty((C_in, kh, kw, min(chunk, N), H_out, W_out), dtype=dtype)
    out = xp.empty((N, C_out, H_out, W_out), dtype=dtype)
    for start in range(0, N, chunk):  # a loop over chunks of images, not over pixels
        n = min(chunk, N - start)
        x_cm = x[start : start + n].transpose(1, 0, 2, 3)  # (C_in, n, H, W)
        block = columns[:, :, :, :n]
        for m in range(kh):  # kh * kw slab copies
            for q in range(kw):
                rows = slice(m, m + stride * (H_out - 1) + 1, stride)
                cols = slice(q, q + stride * (W_out - 1) + 1, stride)
                block[:, m, q] = x_cm[:, :, rows, cols]
        products = (w2d @ block.reshape(K, n * H_out * W_out)).reshape(C_out, n, H_out, W_out).transpose(1, 0, 2, 3)
        if b4d is None:
            out[start : start + n] = products
        else:  # the bias rides along with the copy back to (N, C_out, H_out, W_out)
            xp.add(products, b4d, out=out[start : start + n])
    return out
    ### END SOLUTION


# %% [markdown] tags=["self-check"]
# ### Check Part 5
#
# Save the notebook, then run the grader's public test for Part 5. It checks values only: the speed
# tests run when your submission is graded.

# %% tags=["self-check"]
# !wsgrade check weight_sharing.ipynb -k test_part5

# %% [markdown]
# ## Part 6 — Gradients: why a shared weight collects a *sum*
#
# Training needs the gradient of a loss with respect to every weight. Write the incoming gradient
# (from the layers above) as `dout`, with the layer's output shape. Since the output is linear in
# each weight,
#
# $$\frac{\partial L}{\partial w[o, c, m, q]} = \sum_{n}\sum_{i}\sum_{j} \text{dout}[n, o, i, j]\;
#   x_{\text{pad}}[n, c, i s + m, j s + q].$$
#
# The sum over `(i, j)` is weight sharing seen from the other side: one weight was used at every
# position, so it receives the contributions of every position — added, not averaged. A
# locally-connected layer has a separate weight per position, so its gradient has no sum over
# `(i, j)`; tie its weights and add its per-position gradients, and you get the conv gradient back.
# This is the identity the tests check.
#
# The input gradient runs the same bookkeeping backwards: each input pixel receives
# `dout[n, o, i, j] * w[o, c, m, q]` from every output it contributed to. Padding cells get
# gradient too, but they are not inputs, so that part is cut off at the end.


# %%
def conv2d_backward(
    dout: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int = 1, padding: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task 6.1: gradients of ``sum(dout * conv2d_layer(x, weight, bias, stride, padding))``.

    Args:
        dout: gradient with respect to the layer's output, shape ``(N, C_out, H_out, W_out)``.
        x: the layer's input, shape ``(N, C_in, H, W)``.
        weight: filter banks, shape ``(C_out, C_in, kh, kw)``.
        stride: ``>= 1``.
        padding: ``>= 0``.

    Returns:
        ``(dx, dweight, dbias)`` with the shapes of ``x``, ``weight`` and ``(C_out,)``.

    Raises:
        ValueError: if ``dout``'s shape is not the layer's output shape, or as ``conv2d_layer``.
    """
    ### BEGIN SOLUTION
    N, _, H_out, W_out = _check_conv_args(x, weight, None, stride, padding)
    C_out, _, kh, kw = weight.shape
    if dout.shape != (N, C_out, H_out, W_out):
        raise ValueError(f"dout must have the layer's output shape {(N, C_out, H_out, W_out)}, got {dout.shape}")
    H, W = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dxp = np.zeros_like(xp, dtype=np.result_type(dout, weight, x))
    dweight = np.zeros(weight.shape, dtype=np.result_type(dout, x))
    for m in range(kh):
        for q in range(kw):
            rows = slice(m, m + stride * (H_out - 1) + 1, stride)
            cols = slice(q, q + stride * (W_out - 1) + 1, stride)
            # The weight w[:, :, m, q] was used at every (i, j): sum its contributions.
            dweight[:, :, m, q] = np.einsum("noij,ncij->oc", dout, xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += np.einsum("noij,oc->ncij", dout, weight[:, :, m, q])
    dbias = dout.sum(axis=(0, 2, 3))
    return dxp[:, :, padding : padding + H, padding : padding + W], dweight, dbias
    ### END SOLUTION


def locally_connected2d_backward(
    dout: np.ndarray, x: np.ndarray, weight: np.ndarray, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Task 6.2: gradients of ``sum(dout * locally_connected2d(x, weight, bias, stride))``.

    Args:
        dout: gradient with respect to the output, shape ``(N, C_out, H_out, W_out)``.
        x: the layer's input, shape ``(N, C_in, H, W)``.
        weight: shape ``(H_out, W_out, C_out, C_in, kh, kw)``.
        stride: ``>= 1``.

    Returns:
        ``(dx, dweight, dbias)`` with the shapes of ``x``, ``weight`` and ``(H_out, W_out, C_out)``.

    Raises:
        ValueError: if ``dout``'s shape is not the layer's output shape, or as ``locally_connected2d``.
    """
    ### BEGIN SOLUTION
    windows = _lc_windows(x, weight, None, stride)
    H_out, W_out, C_out, _, kh, kw = weight.shape
    if dout.shape != (x.shape[0], C_out, H_out, W_out):
        raise ValueError(
            f"dout must have the layer's output shape {(x.shape[0], C_out, H_out, W_out)}, got {dout.shape}"
        )
    # Each position has its own weights: no sum over (i, j), only over the batch.
    dweight = np.einsum("noij,ncijmq->ijocmq", dout, windows)
    dbias = dout.sum(axis=0).transpose(1, 2, 0)
    dx = np.zeros(x.shape, dtype=np.result_type(dout, weight, x))
    for m in range(kh):
        for q in range(kw):
            rows = slice(m, m + stride * (H_out - 1) + 1, stride)
            cols = slice(q, q + stride * (W_out - 1) + 1, stride)
            dx[:, :, rows, cols] += np.einsum("noij,ijoc->ncij", dout, weight[:, :, :, :, m, q])
    return dx, dweight, dbias
    ### END SOLUTION


# %% [markdown]
# ### Worked example: the summed-gradient identity
#
# Tie a locally-connected layer to a conv layer, compute both gradients for the same `dout`, and sum
# the locally-connected weight gradient over positions.

# %%
x = rng.standard_normal((2, 3, 6, 6))
w = rng.standard_normal((4, 3, 3, 3))
dout = rng.standard_normal((2, 4, 4, 4))
_, dw_conv, _ = conv2d_backward(dout, x, w)
_, dw_local, _ = locally_connected2d_backward(dout, x, conv_as_locally_connected(w, None, 4)[0])
print("sum over positions of the LC gradient == conv gradient:", np.allclose(dw_local.sum(axis=(0, 1)), dw_conv))

# %% [markdown] tags=["self-check"]
# ### Check Part 6
#
# Save the notebook, then run the grader's public tests for Part 6.

# %% tags=["self-check"]
# !wsgrade check weight_sharing.ipynb -k test_part6

# %% [markdown]
# ## Self-study — does weight sharing help a network learn? An experiment on real digits
#
# *Not graded.* Parts 2 and 4 proved two of the lecture's claims about weight sharing: a shared
# filter needs far fewer parameters, and it commutes with shifts. The third claim, that sharing
# makes a network **generalise better**, is not something you can prove with algebra; it is a
# statement about learning from data, so we measure it.
#
# `wsgrade experiment` trains three small networks with plain NumPy on the handwritten digits that
# come with scikit-learn (1,797 grayscale images of 8x8 pixels, no download). Their layers call
# **your** `conv2d_layer`, `conv2d_backward`, `locally_connected2d`, `locally_connected2d_backward`
# and `shift2d`, wherever those run on a small test input; for the others the reference runs. The
# report's first lines say which one ran for each function, and warn when yours gives different
# numbers than the reference.
#
# | network | layers | parameters |
# |---|---|---|
# | conv | conv 3x3 (8) → ReLU → max-pool 2x2 → conv 3x3 (16) → ReLU → global max-pool → dense 10 | 1,418 |
# | locally connected | the same with locally-connected layers: a filter bank per position | 18,682 |
# | dense | 144 pixels → dense 10 → ReLU → dense 10 | 1,560 |
#
# The numbers in brackets are filters. Both 3x3 layers of the locally-connected net have the same
# receptive fields as the conv net's, but a separate filter bank at every output position. The global
# max-pool asks each of the 16 filters of the last layer one question: "did you fire *anywhere*?". Each
# digit is drawn in the middle of a 12x12 canvas of zeros, so it can move by two pixels without
# leaving the picture. Each network is trained three times, on 50, 200 and all 1,347 training digits,
# always with the same number of gradient steps, then tested on 450 other digits: centred, and moved
# 1, 2 and 3 pixels up, down, left and right with `shift2d`. Everything is seeded, so a rerun gives
# the same numbers.
#
# **Save the notebook first**: the command reads your functions from the file. It runs them in its
# own process, not in the grader's sandbox, which is fine for your own code on your own machine. The
# cell below runs the quick configuration: the full experiment without its 200-digit runs, about 7 s.
# In a terminal, `wsgrade experiment --submission weight_sharing.ipynb` runs the full one (about 11 s,
# longer on a busy machine) and writes its table and figures to `out/experiment/`. A convolution
# that loops over pixels in Python makes both slower; the progress bar shows how far they are.

# %%
# !wsgrade experiment --submission weight_sharing.ipynb --quick --out experiment

# %%
from pathlib import Path  # noqa: E402

from IPython.display import Image, display  # noqa: E402

folder = Path("experiment")
names = ["shifted_digits.png", "accuracy_vs_shift.png", "accuracy_vs_training_size.png"]
display(*(Image(filename=str(folder / name)) for name in names if (folder / name).exists()))

# %% [markdown]
# ### Reading the figures
#
# * **`shifted_digits`** shows the task: one test digit moved right (top row) and down (bottom row).
#   At three pixels the outermost row or column of the digit falls off the canvas.
# * **`accuracy_vs_shift`** has one panel per training-set size. Each line is a network's test
#   accuracy against the size of the shift; the gray line is guessing (10%). Look at the slopes
#   rather than the starting points: how much does each network lose when the digit moves?
# * **`accuracy_vs_training_size`** puts the number of training digits on the horizontal axis (log
#   scale). Left: centred test digits only. Right: the average over shifts of 0 to 3 pixels. A
#   network that "needs fewer examples" reaches a given height further to the left.
#
# ### What the full run measured, and where the lecture's claim does not hold
#
# With the reference implementation, averaged over seeds 0 to 4 (test accuracy in %):
#
# | training digits | conv: 0 / 1 / 2 / 3 px | locally connected: 0 / 1 / 2 / 3 px | dense: 0 / 1 / 2 / 3 px |
# |---|---|---|---|
# | 50 | 78 / 47 / 37 / 22 | 82 / 38 / 11 / 8 | 78 / 33 / 10 / 9 |
# | 200 | 93 / 59 / 46 / 30 | 94 / 42 / 11 / 10 | 89 / 39 / 11 / 12 |
# | 1,347 | 96 / 62 / 52 / 32 | 98 / 50 / 13 / 10 | 95 / 44 / 11 / 9 |
#
# **Shifts: the claim holds, clearly.** Moved by two pixels, a digit is still recognised by the conv
# net 37 to 52% of the time; the other two networks drop to chance, however many examples they were
# trained on. The conv net trained on 50 digits beats both others trained on all 1,347 at two and
# three pixels. The untied networks learned what each digit looks like *at one position*: moved, its
# strokes land on weights that were trained for other strokes, or, near the border, on weights that
# never saw any ink during training and still hold their random starting values. The conv net has no
# position-specific weights; its filters learned what a stroke looks like, and use that everywhere.
#
# **Centred digits: the claim does not hold here.** On test digits that sit where the training digits
# sat, the conv net does not need fewer examples than a net without sharing. The locally-connected
# net, with 13 times the parameters, is the more accurate at every training-set size (in 12 of the 15
# seed-and-size pairs). The dense net, with about as many parameters as the conv net, is as good with
# 50 examples (better in 3 seeds of 5; seed 1: 86.7% against 79.6%) and falls behind only with more
# data. Nor do the 18,682 unshared weights "overfit drastically", as the lecture's "Food for thought"
# slide expects: with 50 examples they generalise to centred digits better than the conv net's 1,418
# (82% against 78% on average).
#
# Why? The people who made this data set centred every digit and scaled it to the same size, so *where*
# a stroke is says a lot about which digit it belongs to. Unshared weights can learn "ink here means
# a 7"; the conv net's global max-pool throws that information away on purpose. This is the situation
# the lecture describes under "When might weight sharing not be ideal?" (aligned faces, with eyes at
# fixed positions). Weight sharing is an assumption about the data, that the same pattern means the same
# thing wherever it appears. It pays off exactly when the test data breaks the alignment of the
# training data, and it costs a little when the data is aligned. (The seed matters too: with 50 examples
# a network's centred accuracy moved by 10 to 19 points across the five seeds. Try `--seed`.)
#
# Things to try: does the conv net ever become fully shift-invariant, and if not, what in its layers
# (the stride-2 pooling, the zeros at the border) still depends on position? How would you make the dense
# net robust to shifts without sharing weights (think of what you could do to the training data), and
# how many more training examples would that cost?
