"""Weight sharing in convolutional networks: your solutions.

Implement every function whose body raises NotImplementedError; the message names the task.
weight_sharing.ipynb explains each task with figures and worked examples (it holds the same
functions: hand in either file). Check your work with

    pytest test_public.py            # public examples, in your own Python
    wsgrade check weight_sharing.py  # the grader's public tests, in its sandbox

Do not rename functions or their arguments: the grader calls them by these names.
Generated from the reference by `wsgrade release`; do not edit the copy in the course repository.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


# ------------------------------------------------------------------------------------------------
# Part 1 — Convolution, the way deep learning defines it
# ------------------------------------------------------------------------------------------------


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
    raise NotImplementedError('Task 1.1: conv2d is not implemented yet (replace this line with your code)')


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
    raise NotImplementedError('Task 1.2: conv2d_layer is not implemented yet (replace this line with your code)')


# ------------------------------------------------------------------------------------------------
# Part 2 — Counting parameters
# ------------------------------------------------------------------------------------------------


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
    raise NotImplementedError('Task 2.1: conv_output_size is not implemented yet (replace this line with your code)')


def dense_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Task 2.2: number of parameters of a fully-connected (dense) layer.

    Args:
        in_features: inputs per example.
        out_features: outputs per example.
        bias: whether the layer has one bias per output.

    Returns:
        ``in_features * out_features`` weights, plus ``out_features`` biases if ``bias``.
    """
    raise NotImplementedError('Task 2.2: dense_params is not implemented yet (replace this line with your code)')


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
    raise NotImplementedError('Task 2.3: conv2d_params is not implemented yet (replace this line with your code)')


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
    raise NotImplementedError('Task 2.4: locally_connected2d_params is not implemented yet (replace this line with your code)')


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
    raise NotImplementedError('Task 2.5: network_summary is not implemented yet (replace this line with your code)')


# ------------------------------------------------------------------------------------------------
# Part 3 — Locally-connected layers: the same wiring, no sharing
# ------------------------------------------------------------------------------------------------


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
    raise NotImplementedError('Task 3.1: locally_connected2d is not implemented yet (replace this line with your code)')


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
    raise NotImplementedError('Task 3.2: conv_as_locally_connected is not implemented yet (replace this line with your code)')


# ------------------------------------------------------------------------------------------------
# Part 4 — Shift tests: translation equivariance
# ------------------------------------------------------------------------------------------------


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
    raise NotImplementedError('Task 4.1: shift2d is not implemented yet (replace this line with your code)')


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
    raise NotImplementedError('Task 4.2: circular_conv2d is not implemented yet (replace this line with your code)')


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
    raise NotImplementedError('Task 4.3: equivariance_error is not implemented yet (replace this line with your code)')


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
    raise NotImplementedError('Task 4.4: is_shift_equivariant is not implemented yet (replace this line with your code)')


# ------------------------------------------------------------------------------------------------
# Part 5 — The performance task: a fast convolution, on the CPU or a GPU
# ------------------------------------------------------------------------------------------------


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
    raise NotImplementedError('Task 5.1: conv2d_fast is not implemented yet (replace this line with your code)')


# ------------------------------------------------------------------------------------------------
# Part 6 — Gradients: why a shared weight collects a *sum*
# ------------------------------------------------------------------------------------------------


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
    raise NotImplementedError('Task 6.1: conv2d_backward is not implemented yet (replace this line with your code)')


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
    raise NotImplementedError('Task 6.2: locally_connected2d_backward is not implemented yet (replace this line with your code)')
