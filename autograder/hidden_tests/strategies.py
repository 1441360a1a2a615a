"""Hypothesis strategies shared by the hidden tests (one module, so every part draws alike).

Each array is drawn as two choices, a seed and a density, and filled from a seeded NumPy generator
with integers in [-3, 3] (zeros where a density mask says so). Two reasons:

* Shrinking stays fast and reliable. When the entries are drawn one by one, the number of later
  choices depends on the shapes drawn earlier, and hypothesis's shrinker can spend a minute failing
  to reduce a shape. With a fixed two choices per array, shapes shrink freely.
* Small integers are exact in floating point, and a sparse small example reads like a hand-made one.

General floats come from the tests on larger inputs, which use a seeded ``numpy.random.Generator``
directly. Shapes stay small: a mistake in a convolution shows on a 3x3 image as surely as on a
300x300 one, and the student can read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from autograder.sandbox.client import ArrayView

__all__ = [
    "LAYOUTS",
    "ConvCase",
    "LayerCase",
    "arrays",
    "as_dtype",
    "conv_cases",
    "draw_array",
    "dtypes",
    "layer_cases",
    "layout_view",
    "maybe_views",
]


def dtypes() -> st.SearchStrategy[np.dtype]:
    """float64 most of the time, float32 sometimes (the contract accepts both). Draw it last."""
    return st.sampled_from([np.dtype(np.float64), np.dtype(np.float64), np.dtype(np.float32)])


_SEEDS = st.integers(0, 2**32 - 1)
_DENSITIES = st.sampled_from([0.25, 0.5, 1.0])


def draw_array(draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray:
    """A float64 array of integers in [-3, 3], possibly sparse (see the module docstring).

    Drawn with ``draw`` directly: ``draw_array(draw, shape)`` makes a new strategy for every array,
    which hypothesis validates anew (a fifth of a grading's time went to that).
    """
    seed = draw(_SEEDS)
    density = draw(_DENSITIES)
    rng = np.random.default_rng(seed)
    values = rng.integers(-3, 4, size=shape).astype(np.float64)
    return np.where(rng.random(shape) < density, values, 0.0)  # where, not *: no -0. in feedback


@st.composite
def arrays(draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray:
    """:func:`draw_array` as a strategy, for where one is needed (``st.none() | arrays(shape)``)."""
    return draw_array(draw, shape)


def as_dtype(array: np.ndarray | None, dtype: np.dtype) -> np.ndarray | None:
    """Cast a drawn array (``None`` stays ``None``)."""
    return None if array is None else array.astype(dtype)


#: The memory layouts :func:`maybe_views` draws, in shrinking order (C order first: the simplest).
LAYOUTS = ("c", "c", "fortran", "swapped", "strided", "reversed")


def layout_view(array: np.ndarray, layout: str) -> np.ndarray | ArrayView:
    """The array's values in one memory layout, as the worker will hand them to the student.

    The sandbox sends an :class:`ArrayView` as a contiguous base and rebuilds it in the worker as
    ``base[slices].transpose(axes)``, so that the student's function receives:

    * ``"c"``: the array itself (C order, row-major);
    * ``"fortran"``: an F-contiguous array (column-major, as ``np.asfortranarray`` gives), the
      transpose of a C-ordered one;
    * ``"swapped"``: the last two axes swapped (``a.swapaxes(-1, -2)`` of a contiguous array);
    * ``"strided"``: every other column of a twice wider array (``a[..., ::2]``);
    * ``"reversed"``: negative strides on every axis (``a[::-1, ::-1]`` of a reversed copy).

    A layout that an array this small cannot have (a 1-D array is never Fortran-only) gives the
    array itself.

    Args:
        array: the values.
        layout: one of :data:`LAYOUTS`.

    Returns:
        The array, or a view to send.

    Raises:
        ValueError: for an unknown layout.
    """
    full = tuple((None, None, None) for _ in range(array.ndim))
    identity = tuple(range(array.ndim))
    if layout == "c" or array.size <= 1:
        return array
    if layout in ("fortran", "swapped"):
        if array.ndim < 2:
            return array
        axes = identity[::-1] if layout == "fortran" else (*identity[:-2], identity[-1], identity[-2])
        return ArrayView(np.ascontiguousarray(array.transpose(axes)), full, axes)
    if layout == "strided":
        base = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
        base[..., ::2] = array
        return ArrayView(base, (*full[:-1], (None, None, 2)), identity)
    if layout == "reversed":
        backwards = tuple(slice(None, None, -1) for _ in range(array.ndim))
        return ArrayView(np.ascontiguousarray(array[backwards]), tuple((None, None, -1) for _ in identity), identity)
    raise ValueError(f"layout must be one of {sorted(set(LAYOUTS))}, got {layout!r}")


@st.composite
def maybe_views(draw: st.DrawFn, array: np.ndarray | None) -> np.ndarray | ArrayView | None:
    """The array in a drawn memory layout (C, Fortran, swapped axes, strided or negative strides).

    ``None`` (an absent bias) stays ``None``.
    """
    if array is None:
        return None
    return layout_view(array, draw(st.sampled_from(LAYOUTS)))


@dataclass(frozen=True)
class ConvCase:
    """One image and one kernel for ``conv2d``."""

    image: np.ndarray
    kernel: np.ndarray


@st.composite
def conv_cases(draw: st.DrawFn, *, max_side: int = 7) -> ConvCase:
    """An image ``(H, W)`` and a kernel ``(kh, kw)`` that fits in it, rectangular as often as square."""
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kh, kw = draw(st.integers(1, H)), draw(st.integers(1, W))
    image, kernel = draw_array(draw, (H, W)), draw_array(draw, (kh, kw))
    dtype = draw(dtypes())
    return ConvCase(image.astype(dtype), kernel.astype(dtype))


@dataclass(frozen=True)
class LayerCase:
    """Arguments of a convolutional layer."""

    x: np.ndarray
    weight: np.ndarray
    bias: np.ndarray | None
    stride: int
    padding: int

    @property
    def kwargs(self) -> dict[str, object]:
        """The optional arguments, passed by keyword as the contract says."""
        return {"bias": self.bias, "stride": self.stride, "padding": self.padding}


@st.composite
def layer_cases(
    draw: st.DrawFn, *, max_side: int = 7, max_stride: int = 3, max_padding: int = 2, bias: bool | None = None
) -> LayerCase:
    """A batch, filters, optional bias, stride and padding such that the kernel fits the padded input."""
    N, C_in, C_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    padding = draw(st.integers(0, max_padding))
    kh, kw = draw(st.integers(1, min(4, H + 2 * padding))), draw(st.integers(1, min(4, W + 2 * padding)))
    stride = draw(st.integers(1, max_stride))
    with_bias = draw(st.booleans()) if bias is None else bias
    x, weight = draw_array(draw, (N, C_in, H, W)), draw_array(draw, (C_out, C_in, kh, kw))
    b = draw_array(draw, (C_out,)) if with_bias else None
    dtype = draw(dtypes())
    return LayerCase(x.astype(dtype), weight.astype(dtype), as_dtype(b, dtype), stride, padding)
