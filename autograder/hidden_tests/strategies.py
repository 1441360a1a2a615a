"""Hypothesis strategies shared by the hidden tests (one module, so every part draws alike).

Values are small integers most of the time (exact in floating point, and a shrunk counterexample
reads like a hand-made one), mixed with general floats in [-4, 4]. Shapes stay small: a mistake in
a convolution shows on a 3x3 image as surely as on a 300x300 one, and the student can read it.
Tests on large inputs draw them from a seeded ``numpy.random.Generator`` instead: hypothesis would
spend seconds shrinking hundreds of entries that feedback never prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autograder.sandbox.client import ArrayView

__all__ = [
    "ConvCase",
    "LayerCase",
    "arrays",
    "conv_cases",
    "dtypes",
    "float_arrays",
    "layer_cases",
    "maybe_views",
    "values",
]


def values() -> st.SearchStrategy[float]:
    """Array entries: small integers first (they shrink to readable examples), then any float in [-4, 4]."""
    return st.one_of(
        st.integers(-3, 3).map(float),
        st.floats(-4, 4, allow_nan=False, allow_infinity=False, allow_subnormal=False),
    )


def dtypes() -> st.SearchStrategy[np.dtype]:
    """float64 most of the time, float32 sometimes (the contract accepts both)."""
    return st.sampled_from([np.dtype(np.float64), np.dtype(np.float64), np.dtype(np.float32)])


def arrays(shape: tuple[int, ...], dtype: np.dtype | type = np.float64) -> st.SearchStrategy[np.ndarray]:
    """Arrays of a given shape with entries from :func:`values`."""
    return hnp.arrays(np.dtype(dtype), shape, elements=values().map(lambda v: np.dtype(dtype).type(v)))


def float_arrays(shape: tuple[int, ...], dtype: np.dtype | type = np.float64) -> st.SearchStrategy[np.ndarray]:
    """Arrays of general floats in [-4, 4] (no integer bias), for precision-sensitive properties."""
    return hnp.arrays(
        np.dtype(dtype), shape, elements=st.floats(-4, 4, width=32 if np.dtype(dtype) == np.float32 else 64)
    )


@st.composite
def maybe_views(draw: st.DrawFn, array: np.ndarray) -> np.ndarray | ArrayView:
    """The array itself, or a non-contiguous view with the same values (transposed or strided)."""
    kind = draw(st.sampled_from(["plain", "plain", "transposed", "strided"]))
    if kind == "plain" or array.ndim < 2:
        return array
    full = tuple((None, None, None) for _ in range(array.ndim))
    if kind == "transposed":
        axes = list(range(array.ndim))
        axes[-1], axes[-2] = axes[-2], axes[-1]
        return ArrayView(np.ascontiguousarray(array.transpose(axes)), full, tuple(axes))
    base = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
    base[..., ::2] = array
    return ArrayView(base, (*full[:-1], (None, None, 2)), tuple(range(array.ndim)))


@dataclass(frozen=True)
class ConvCase:
    """One image and one kernel for ``conv2d``."""

    image: np.ndarray
    kernel: np.ndarray


@st.composite
def conv_cases(draw: st.DrawFn, *, max_side: int = 7) -> ConvCase:
    """An image ``(H, W)`` and a kernel ``(kh, kw)`` that fits in it, rectangular as often as square."""
    dtype = draw(dtypes())
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    kh, kw = draw(st.integers(1, H)), draw(st.integers(1, W))
    return ConvCase(draw(arrays((H, W), dtype)), draw(arrays((kh, kw), dtype)))


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
    dtype = draw(dtypes())
    N, C_in, C_out = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    padding = draw(st.integers(0, max_padding))
    kh, kw = draw(st.integers(1, min(4, H + 2 * padding))), draw(st.integers(1, min(4, W + 2 * padding)))
    stride = draw(st.integers(1, max_stride))
    with_bias = draw(st.booleans()) if bias is None else bias
    return LayerCase(
        draw(arrays((N, C_in, H, W), dtype)),
        draw(arrays((C_out, C_in, kh, kw), dtype)),
        draw(arrays((C_out,), dtype)) if with_bias else None,
        stride,
        padding,
    )
