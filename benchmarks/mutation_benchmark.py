"""Benchmark: the hidden suite's adequacy, measured by mutating the reference one node at a time.

    .venv/bin/python -m benchmarks.mutation_benchmark [--function NAME] [--limit N] [--jobs N] [--json FILE]

Every mutant is the reference (``solutions/weight_sharing.py``) with one small change inside one
function: a comparison, boolean or arithmetic operator swapped, an integer constant moved by one, a
slice bound moved by one or dropped, a ``raise`` dropped, two arguments or tuple items swapped, a
keyword argument dropped, a statement deleted, a return value replaced by ``None``, ``min`` and
``max`` exchanged (the operators are listed in :data:`OPERATORS`). Error messages are never
mutated: the contract asks for a ``ValueError`` that says what is wrong, not for exact words.

Each mutant is graded through the sandbox with ``performance=False`` and only the tests of the tasks
of the function it changes (the reference's private helpers count for every contract function that
calls them). A mutant is *killed* when one of those functions scores below full marks. A survivor
that provably computes the same as the reference everywhere the contract allows is listed in
:data:`EQUIVALENT` with the reason, and reported as "equivalent (explained)"; every other survivor
is a gap in the hidden tests. A survivor that only the GPU tests of Task 5.3 can kill (they need
CuPy and a CUDA device, and the benchmark leaves out the performance tasks) is listed in
:data:`NEEDS_GPU` and reported as "needs a GPU": it is not killed here and not equivalent. The kill
rate is killed / (mutants - explained equivalents), so those count as not killed.

``--function NAME`` (repeatable) mutates only those functions, ``--limit N`` takes at most N mutants
per function (spread over its body), ``--jobs N`` grades in N processes (default 1: the sandbox's
worker needs a core of its own), ``--json FILE`` writes every mutant's verdict there. The exit
status is 1 when a mutant survives unexplained, so that the run can gate a change to the tests.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import multiprocessing
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "EQUIVALENT",
    "NEEDS_GPU",
    "OPERATORS",
    "Explained",
    "Mutation",
    "Verdict",
    "function_users",
    "grade_mutation",
    "mutations",
    "reference_source",
]

#: What each operator changes (the ``operator`` of a :class:`Mutation`).
OPERATORS: dict[str, str] = {
    "compare": "a comparison to its boundary (< to <=) or negation (< to >=); == and !=, is and is not, in and not in",
    "boolean": "and to or, or to and",
    "arith": "an arithmetic operator to a neighbour (+ -, * //, // /, ...), also in augmented assignments",
    "augassign": "x += y to x = y",
    "constant": "an integer constant plus or minus 1; True and False exchanged",
    "unary": "a unary minus or a not dropped",
    "slice": "a slice bound that is not a constant moved by one, or a bound or step dropped",
    "raise": "a raise replaced by pass",
    "delete": "an assignment, augmented assignment or if statement replaced by pass",
    "swap": "two neighbouring positional arguments, or two neighbouring tuple items, exchanged",
    "keyword": "one keyword argument dropped",
    "return": "a returned value replaced by None",
    "name": "min and max exchanged, any and all exchanged",
}

#: Calls whose positional arguments commute: swapping them is no mutation at all.
_COMMUTATIVE_CALLS = {"max", "min", "np.result_type", "xp.result_type"}
_COMPARE_SWAPS: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.GtE),
    ast.LtE: (ast.Lt, ast.Gt),
    ast.Gt: (ast.GtE, ast.LtE),
    ast.GtE: (ast.Gt, ast.Lt),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
}
_ARITH_SWAPS: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
    ast.Add: (ast.Sub,),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.FloorDiv,),
    ast.FloorDiv: (ast.Div, ast.Mult),
    ast.Div: (ast.Mult,),
    ast.Mod: (ast.FloorDiv,),
    ast.Pow: (ast.Mult,),
    ast.MatMult: (ast.Mult,),
}
_NAME_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any"}
_SYMBOLS: dict[type[ast.AST], str] = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
    ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Div: "/", ast.Mod: "%",
    ast.Pow: "**", ast.MatMult: "@",
}  # fmt: skip


@dataclass(frozen=True)
class Explained:
    """A surviving mutant that was read and argued about, with the argument.

    Attributes:
        function: the function the mutant changes.
        before: the changed line(s) of the reference, stripped (``Mutation.before``).
        after: the same line(s) in the mutant (``Mutation.after``).
        why: in :data:`EQUIVALENT`, why no correct test can tell the mutant from the reference; in
            :data:`NEEDS_GPU`, which test kills it where there is a GPU.
    """

    function: str
    before: str
    after: str
    why: str

    @property
    def key(self) -> tuple[str, str, str]:
        """``(function, before, after)``, how mutants are matched to this entry."""
        return (self.function, self.before, self.after)


#: Surviving mutants that are equivalent to the reference, keyed by function and the changed line.
#: Each was read and argued; a new survivor is never added here without an argument of the same kind.
_UNPACK = (
    "the next lines unpack .shape into exactly that many names, which raises ValueError (not enough or "
    "too many values to unpack) for any other number of dimensions: the same exception the contract asks for"
)
_PAD = (
    "a negative integer padding still raises ValueError, from np.pad (negative pad widths) in all three "
    "users; the contract's padding is an int, so non-integer padding (np.pad's TypeError) is outside it"
)
_CHECK_ORDER = (
    "reorders two rows of the validation loop: every row raises the same ValueError, so only which message "
    "comes first for arguments wrong twice over changes, and the words are not graded"
)
_DTYPE = (
    "the contract fixes no output dtype: float32 input then gives a float64 output, computed from the "
    "same float32 products and at least as accurate; the checks compare values with a tolerance"
)
_COPY = (
    "astype's copy= only decides whether a new array is made when the dtype already matches: w2d and b4d are only "
    "read (a matrix product, an addition), so a copy changes the memory used, not a value"
)
_CHUNK = (
    "the chunk only decides how many images share one matrix product; every chunk size of at least 1 (this mutant's "
    "are max(1 or 2, ...), N, or a larger or smaller quotient) computes each image from the same receptive fields, "
    "and a different split changes at most BLAS's rounding (measured: 2e-7 relative in float32, within the "
    "tolerance). The loop over chunks itself is tested with batches that fill several chunks, and a chunk of 0 "
    "(max(0, ...), min(1, ...)) is killed"
)
#: The line of the reference's conv2d_fast that sizes its chunks of images.
_CHUNK_LINE = "chunk = max(1, N if xp is not np else 2**19 // (K * H_out * W_out))  # >= 1: N may be 0"
_MIXED_DTYPE = (
    "the gradient's buffer takes x's dtype instead of result_type(dout, weight, x): the same whenever the three "
    "share one dtype; with a float32 x and a float64 dout or weight, dx comes back float32, rounded from the same "
    "sums, which the contract allows (it fixes no output dtype) and the checks accept (float32 tolerance whenever a "
    "float32 array is involved)"
)
_LC_STRIDE = (
    "the locally-connected contract (Tasks 3.1 and 6.2) takes stride >= 1 as a precondition and names no error for "
    "a smaller one (its Raises: positions, channels, bias, dout); without the check every stride < 1 still fails, "
    "0 with ZeroDivisionError at (H - kh) // stride, a negative one mostly at the positions check"
)
_LC_FIT = (
    "a kernel larger than the input leaves (H - kh) // stride + 1 <= 0 positions: the positions check refuses "
    "every weight but one with 0 positions, and for that one sliding_window_view raises ValueError (window shape "
    "larger than the input)"
)
_PAIR_LENGTH = (
    "every caller's argument is typed int | tuple[int, int] and no docstring names an error for a sequence of "
    "another length: the check only turns such a misuse, outside the contract, into a clearer message"
)
EQUIVALENT: tuple[Explained, ...] = (
    Explained(
        "_check_conv_args",
        'if x.ndim != 4: raise ValueError(f"x must have shape (N, C_in, H, W); got {x.ndim} dimensions {x.shape}")',
        "pass",
        _UNPACK,
    ),
    Explained(
        "_check_conv_args",
        'raise ValueError(f"x must have shape (N, C_in, H, W); got {x.ndim} dimensions {x.shape}")',
        "pass",
        _UNPACK,
    ),
    Explained(
        "_check_conv_args",
        'if weight.ndim != 4: raise ValueError(f"weight must have shape (C_out, C_in, kh, kw); got {weight.ndim} '
        'dimensions {weight.shape}")',
        "pass",
        _UNPACK,
    ),
    Explained(
        "_check_conv_args",
        'raise ValueError(f"weight must have shape (C_out, C_in, kh, kw); got {weight.ndim} dimensions '
        '{weight.shape}")',
        "pass",
        _UNPACK,
    ),
    Explained(
        "_check_conv_args",
        "if int(padding) != padding or padding < 0: "
        'raise ValueError(f"padding must be an integer >= 0, got {padding!r}")',
        "pass",
        _PAD,
    ),
    Explained(
        "_check_conv_args",
        'raise ValueError(f"padding must be an integer >= 0, got {padding!r}")',
        "pass",
        _PAD,
    ),
    Explained(
        "_check_conv_args",
        "if int(padding) != padding or padding < 0:",
        "if int(padding) != padding and padding < 0:",
        _PAD,
    ),
    Explained(
        "_check_conv_args",
        "if int(padding) != padding or padding < 0:",
        "if int(padding) != padding or padding < -1:",
        _PAD,
    ),
    Explained(
        "conv2d",
        'if image.ndim != 2 or kernel.ndim != 2: raise ValueError(f"conv2d needs a 2-D image and a 2-D kernel, got '
        'shapes {image.shape} and {kernel.shape}")',
        "pass",
        _UNPACK,
    ),
    Explained(
        "conv2d",
        'raise ValueError(f"conv2d needs a 2-D image and a 2-D kernel, got shapes {image.shape} and {kernel.shape}")',
        "pass",
        _UNPACK,
    ),
    Explained(
        "conv2d",
        "if image.ndim != 2 or kernel.ndim != 2:",
        "if image.ndim != 2 and kernel.ndim != 2:",
        _UNPACK + " (a call with one of the two wrong still fails at the unpacking)",
    ),
    Explained(
        "conv2d",
        "out = np.zeros((H_out, W_out), dtype=np.result_type(image, kernel))",
        "out = np.zeros((H_out, W_out))",
        _DTYPE,
    ),
    Explained(
        "conv2d_layer",
        "out = np.zeros((N, C_out, H_out, W_out), dtype=np.result_type(x, weight))",
        "out = np.zeros((N, C_out, H_out, W_out))",
        _DTYPE,
    ),
    Explained(
        "network_summary",
        'if len(shape) != 3: raise ValueError(f"needs an image input (C, H, W), got {shape}")',
        "pass",
        _UNPACK + " (C, H, W = shape; the layer's except clause adds the layer's index, as for the check)",
    ),
    Explained(
        "network_summary",
        'raise ValueError(f"needs an image input (C, H, W), got {shape}")',
        "pass",
        _UNPACK + " (C, H, W = shape; the layer's except clause adds the layer's index, as for the check)",
    ),
    Explained(
        "network_summary",
        'params = conv2d_params(C, layer["out_channels"], (kh, kw), layer.get("bias", True))',
        'params = conv2d_params(C, layer["out_channels"], (kw, kh), layer.get("bias", True))',
        "conv2d_params multiplies kh and kw together, so the count does not depend on their order",
    ),
    Explained(
        "network_summary",
        'params = dense_params(shape[0], layer["out_features"], layer.get("bias", True))',
        'params = dense_params(shape[-1], layer["out_features"], layer.get("bias", True))',
        "the line runs only after len(shape) == 1 was checked, and a 1-tuple's first item is its last",
    ),
    Explained(
        "shift2d",
        'if x.ndim < 2: raise ValueError(f"shift2d needs an array with at least 2 dimensions, got shape {x.shape}")',
        "pass",
        _UNPACK + " (H, W = x.shape[-2:] has fewer than two values for a 0-D or 1-D x)",
    ),
    Explained(
        "shift2d",
        'raise ValueError(f"shift2d needs an array with at least 2 dimensions, got shape {x.shape}")',
        "pass",
        _UNPACK + " (H, W = x.shape[-2:] has fewer than two values for a 0-D or 1-D x)",
    ),
    Explained(
        "shift2d",
        "if x.ndim < 2:",
        "if x.ndim < 1:",
        _UNPACK + " (H, W = x.shape[-2:] has one value for a 1-D x)",
    ),
    Explained(
        "shift2d",
        "if abs(dy) >= H or abs(dx) >= W:",
        "if abs(dy) > H or abs(dx) >= W:",
        "for |dy| == H the slices below are empty (slice(H, H) and slice(0, 0)), so the result is all zeros, as the "
        "early return gives; only |dy| > H needs it",
    ),
    Explained(
        "shift2d",
        "if abs(dy) >= H or abs(dx) >= W:",
        "if abs(dy) >= H or abs(dx) > W:",
        "for |dx| == W the slices below are empty, so the result is all zeros, as the early return gives",
    ),
    Explained(
        "shift2d",
        "rows_dst, rows_src = slice(max(dy, 0), H + min(dy, 0)), slice(max(-dy, 0), H - max(dy, 0))",
        "rows_dst, rows_src = slice(max(dy, 0), H + min(dy, 1)), slice(max(-dy, 0), H - max(dy, 0))",
        "the stop moves from H to H + 1 only for dy >= 1, and a slice stop past the end is clipped to H",
    ),
    Explained(
        "shift2d",
        "rows_dst, rows_src = slice(max(dy, 0), H + min(dy, 0)), slice(max(-dy, 0), H - max(dy, 0))",
        "rows_dst, rows_src = slice(max(dy, 0), H + min(dy, 0)), slice(max(-dy, 0), H - max(dy, -1))",
        "the stop moves from H to H + 1 only for dy <= -1, and a slice stop past the end is clipped to H",
    ),
    Explained(
        "shift2d",
        "cols_dst, cols_src = slice(max(dx, 0), W + min(dx, 0)), slice(max(-dx, 0), W - max(dx, 0))",
        "cols_dst, cols_src = slice(max(dx, 0), W + min(dx, 1)), slice(max(-dx, 0), W - max(dx, 0))",
        "the stop moves from W to W + 1 only for dx >= 1, and a slice stop past the end is clipped to W",
    ),
    Explained(
        "shift2d",
        "cols_dst, cols_src = slice(max(dx, 0), W + min(dx, 0)), slice(max(-dx, 0), W - max(dx, 0))",
        "cols_dst, cols_src = slice(max(dx, 0), W + min(dx, 0)), slice(max(-dx, 0), W - max(dx, -1))",
        "the stop moves from W to W + 1 only for dx <= -1, and a slice stop past the end is clipped to W",
    ),
    Explained(
        "circular_conv2d",
        "out = np.zeros((x.shape[0], C_out) + x.shape[2:], dtype=np.result_type(x, weight))",
        "out = np.zeros((x.shape[0], C_out) + x.shape[2:])",
        _DTYPE,
    ),
    Explained(
        "conv_output_size",
        '("size", size, 1), ("kernel_size", kernel_size, 1),',
        '("kernel_size", kernel_size, 1), ("size", size, 1),',
        _CHECK_ORDER,
    ),
    Explained(
        "conv_output_size",
        '("kernel_size", kernel_size, 1), ("stride", stride, 1),',
        '("stride", stride, 1), ("kernel_size", kernel_size, 1),',
        _CHECK_ORDER,
    ),
    Explained(
        "conv_output_size",
        '("stride", stride, 1), ("padding", padding, 0),',
        '("padding", padding, 0), ("stride", stride, 1),',
        _CHECK_ORDER,
    ),
    Explained(
        "conv2d_params",
        "kh, kw = _pair(kernel_size)",
        "kw, kh = _pair(kernel_size)",
        "kh and kw are only multiplied together (C_out * C_in * kh * kw), and a product does not depend on the order",
    ),
    *(
        Explained(
            "conv2d_fast", f"{name} = {value}.astype(dtype, copy=False)", f"{name} = {value}.astype({args})", _COPY
        )
        for name, value in (
            ("w2d", "weight.reshape(C_out, K)"),
            ("b4d", "None if bias is None else bias.reshape(1, C_out, 1, 1)"),
        )
        for args in ("dtype", "dtype, copy=True")
    ),
    Explained(
        "conv2d_fast",
        "x = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))",
        "x = xp.pad(x, ((0, 1), (0, 0), (padding, padding), (padding, padding)))",
        "pads the batch with one zero image at its end, which is never read: the loop takes x[start : start + n] with "
        "start + n <= N only",
    ),
    *(
        Explained("conv2d_fast", _CHUNK_LINE, _CHUNK_LINE.replace(part, mutated, 1), _CHUNK)
        for part, mutated in (
            ("max(1,", "max(2,"),
            ("2**19 //", "2**19 *"),
            ("2**19", "2*19"),
            ("2**19", "3**19"),
            ("2**19", "1**19"),
            ("2**19", "2**20"),
            ("2**19", "2**18"),
        )
    ),
    Explained(
        "conv2d_fast",
        _CHUNK_LINE,
        _CHUNK_LINE.replace("is not np", "is np", 1),
        _CHUNK + " (here NumPy takes the whole batch at once and CuPy chunks; max(1, ...) keeps an empty batch's "
        "chunk at 1 on both)",
    ),
    Explained(
        "conv2d_fast",
        "columns = xp.empty((C_in, kh, kw, min(chunk, N), H_out, W_out), dtype=dtype)",
        "columns = xp.empty((C_in, kh, kw, max(chunk, N), H_out, W_out), dtype=dtype)",
        "a buffer for more images than a chunk holds; block = columns[:, :, :, :n] still takes the first n of them",
    ),
    Explained(
        "conv2d_fast",
        "columns = xp.empty((C_in, kh, kw, min(chunk, N), H_out, W_out), dtype=dtype)",
        "columns = xp.empty((C_in, kh, kw, min(chunk, N), H_out, W_out))",
        "the receptive fields are copied into float64 instead of the inputs' dtype: nothing changes for float64 "
        "inputs; for float32 ones the copies are exact, the product is computed in float64 and rounded once into "
        "out, which keeps its dtype: at least as accurate as the float32 product (measured: 5e-7 relative)",
    ),
    Explained(
        "conv2d_fast",
        "out = xp.empty((N, C_out, H_out, W_out), dtype=dtype)",
        "out = xp.empty((N, C_out, H_out, W_out))",
        _DTYPE,
    ),
    Explained(
        "conv2d_fast",
        "xp.add(products, b4d, out=out[start : start + n])",
        "xp.add(b4d, products, out=out[start : start + n])",
        "floating-point addition is commutative, and the operands broadcast to the same shape either way",
    ),
    Explained(
        "conv2d_backward",
        "dxp = np.zeros_like(xp, dtype=np.result_type(dout, weight, x))",
        "dxp = np.zeros_like(xp)",
        _MIXED_DTYPE,
    ),
    Explained(
        "conv2d_backward",
        "dweight = np.zeros(weight.shape, dtype=np.result_type(dout, x))",
        "dweight = np.zeros(weight.shape)",
        _DTYPE,
    ),
    *(
        Explained(
            "conv2d_backward",
            "dbias = dout.sum(axis=(0, 2, 3))",
            f"dbias = dout.sum(axis={axes})",
            "np.sum reads its axis tuple as a set of axes to reduce: the same axes in another order give the same sums",
        )
        for axes in ("(2, 0, 3)", "(0, 3, 2)")
    ),
    Explained(
        "locally_connected2d_backward",
        "dx = np.zeros(x.shape, dtype=np.result_type(dout, weight, x))",
        "dx = np.zeros(x.shape)",
        _DTYPE,
    ),
    Explained(
        "_lc_windows",
        'if x.ndim != 4: raise ValueError(f"x must have shape (N, C_in, H, W); got {x.shape}")',
        "pass",
        _UNPACK + " (_, C_in, H, W = x.shape, after the stride check)",
    ),
    Explained(
        "_lc_windows",
        'raise ValueError(f"x must have shape (N, C_in, H, W); got {x.shape}")',
        "pass",
        _UNPACK + " (_, C_in, H, W = x.shape, after the stride check)",
    ),
    Explained(
        "_lc_windows",
        "if weight.ndim != 6: "
        'raise ValueError(f"weight must have shape (H_out, W_out, C_out, C_in, kh, kw); got {weight.shape}")',
        "pass",
        _UNPACK + " (H_out, W_out, C_out, C_w, kh, kw = weight.shape)",
    ),
    Explained(
        "_lc_windows",
        'raise ValueError(f"weight must have shape (H_out, W_out, C_out, C_in, kh, kw); got {weight.shape}")',
        "pass",
        _UNPACK + " (H_out, W_out, C_out, C_w, kh, kw = weight.shape)",
    ),
    *(
        Explained("_lc_windows", before, after, _LC_STRIDE)
        for before, after in (
            (
                'if int(stride) != stride or stride < 1: raise ValueError(f"stride must be an integer >= 1, got '
                '{stride!r}")',
                "pass",
            ),
            ('raise ValueError(f"stride must be an integer >= 1, got {stride!r}")', "pass"),
            ("if int(stride) != stride or stride < 1:", "if int(stride) != stride and stride < 1:"),
            ("if int(stride) != stride or stride < 1:", "if int(stride) != stride or stride < 0:"),
        )
    ),
    *(
        Explained("_lc_windows", before, after, _LC_FIT)
        for before, after in (
            ('if kh > H or kw > W: raise ValueError(f"kernel {kh}x{kw} does not fit in the input {H}x{W}")', "pass"),
            ('raise ValueError(f"kernel {kh}x{kw} does not fit in the input {H}x{W}")', "pass"),
            ("if kh > H or kw > W:", "if kh > H and kw > W:"),
        )
    ),
    Explained(
        "_pair",
        'if len(value) != 2: raise ValueError(f"expected an int or a pair (a, b), got {value!r}")',
        "pass",
        _PAIR_LENGTH,
    ),
    Explained("_pair", 'raise ValueError(f"expected an int or a pair (a, b), got {value!r}")', "pass", _PAIR_LENGTH),
)

#: Surviving mutants of the CuPy path: only Task 5.3's tests (test_part5_speed.py), which need CuPy and a CUDA
#: device, call conv2d_fast with a CuPy array. They are not equivalent; a run on a GPU machine must kill them.
_CUPY_ONLY = (
    "changes only what happens to a CuPy array (NumPy arrays still get numpy); Task 5.3's "
    "test_gpu_returns_a_cupy_array_with_the_right_values checks that CuPy in gives CuPy out"
)
NEEDS_GPU: tuple[Explained, ...] = (
    Explained(
        "_array_module",
        'if type(x).__module__.split(".")[0] == "cupy": ... (4 lines)',
        "pass",
        _CUPY_ONLY + ": here it gets numpy, whose np.pad and matmul do not take a CuPy array",
    ),
    Explained("_array_module", "return cupy", "return None", _CUPY_ONLY + ": here xp is None and xp.result_type fails"),
    Explained(
        "_array_module",
        'if type(x).__module__.split(".")[0] == "cupy":',
        'if type(x).__module__.split(".")[-1] == "cupy":',
        _CUPY_ONLY + ": equivalent only if type(x).__module__ is exactly 'cupy', to be confirmed on a GPU",
    ),
)


@dataclass(frozen=True)
class Mutation:
    """One mutant: the reference with one node of one function changed.

    Attributes:
        function: the function whose body (or default argument) was changed.
        operator: a key of :data:`OPERATORS`.
        line: the 1-based line of the change in ``solutions/weight_sharing.py``.
        before: the changed line(s) of the reference, stripped and joined by a space.
        after: the same line(s) in the mutant.
        source: the whole mutated module.
    """

    function: str
    operator: str
    line: int
    before: str
    after: str
    source: str = field(repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        """``(function, before, after)``: stable while the reference's other lines move."""
        return (self.function, self.before, self.after)

    @property
    def description(self) -> str:
        """``line 123 [compare]: old -> new``."""
        return f"line {self.line} [{self.operator}]: {self.before}  ->  {self.after}"


@dataclass(frozen=True)
class Verdict:
    """What grading one mutant found.

    Attributes:
        function: the mutated function.
        operator: the mutation operator.
        line: the line changed.
        before: the reference's line(s).
        after: the mutant's line(s).
        status: ``killed``, ``survived``, ``equivalent`` (survived and explained in :data:`EQUIVALENT`),
            ``needs-gpu`` (survived, listed in :data:`NEEDS_GPU`) or ``error`` (the grading itself failed;
            the message says why).
        lost: the tests that lost points (name and the first line of their feedback).
        internal_errors: how many tests broke inside the grader (a grader bug worth a look).
        why: the explanation, for ``equivalent`` and ``needs-gpu``; the error, for ``error``.
        seconds: wall time of the grading.
    """

    function: str
    operator: str
    line: int
    before: str
    after: str
    status: str
    lost: tuple[str, ...] = ()
    internal_errors: int = 0
    why: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The verdict as plain data (``--json``)."""
        return asdict(self)


def reference_source() -> str:
    """The reference as the graded module (definition cells only, line numbers as in the file)."""
    from autograder.source import SOLUTION_SOURCE, module_text

    return module_text(SOLUTION_SOURCE.read_text(), stubs=False)


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def function_users(source: str | None = None) -> dict[str, tuple[str, ...]]:
    """Each function of the reference -> the contract functions whose grade it affects.

    A contract function affects only itself (its tests are the ones that must catch its mutants,
    even where another function calls it); a private helper affects every contract function that
    calls it, directly or through another helper.

    Args:
        source: the module (default: the reference).

    Returns:
        Function name -> contract function names, in task order.
    """
    from autograder.tasks import contract_functions

    contract = contract_functions()
    defined = _functions(ast.parse(source if source is not None else reference_source()))
    calls = {
        name: {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in defined and n.id != name}
        for name, node in defined.items()
    }

    def reaches(caller: str, helper: str, seen: frozenset[str] = frozenset()) -> bool:
        direct = calls[caller] - set(contract)
        return helper in direct or any(reaches(h, helper, seen | {caller}) for h in direct - seen - {caller})

    users: dict[str, tuple[str, ...]] = {}
    for name in defined:
        if name in contract:
            users[name] = (name,)
        else:
            found = tuple(c for c in contract if c in defined and reaches(c, name))
            if found:
                users[name] = found
    return users


def _is_constant(node: ast.expr | None) -> bool:
    """A literal, possibly negated: the constant operator already moves it by one."""
    return isinstance(node, ast.Constant) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
    )


def _plus(node: ast.expr, delta: int) -> ast.expr:
    return ast.BinOp(copy.deepcopy(node), ast.Add() if delta > 0 else ast.Sub(), ast.Constant(abs(delta)))


def _with(node: ast.AST, **changes: Any) -> ast.AST:
    """A deep copy of ``node`` with some fields replaced."""
    changed = copy.deepcopy(node)
    for name, value in changes.items():
        setattr(changed, name, value)
    return changed


#: A text edit inside one function's source: (start, end, replacement), byte offsets.
_Edit = tuple[int, int, str]


class _FunctionMutator:
    """The mutants of one top-level function, written into its source text.

    Where it can, a mutant changes only the token it is about (an operator, a constant, two
    items exchanged), so that the rest of the line keeps its formatting and the change reads as
    one line; otherwise the replacement node is unparsed into the original's place. Either way a
    mutant is kept only when its parsed function is exactly the intended tree.
    """

    def __init__(self, name: str, segment: str, first_line: int) -> None:
        self.name = name
        self.first_line = first_line
        self.data = segment.encode()
        self.starts = [0]
        for line in segment.encode().splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))
        tree = ast.parse(segment)
        function = tree.body[0]
        if not isinstance(function, ast.FunctionDef):
            raise ValueError(f"{name}: the segment does not start with its def")
        self.function = function
        self.parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}

    def span(self, node: ast.AST) -> tuple[int, int]:
        """Byte offsets of a node's text in the segment."""
        return (
            self.starts[node.lineno - 1] + node.col_offset,  # type: ignore[attr-defined]
            self.starts[node.end_lineno - 1] + node.end_col_offset,  # type: ignore[attr-defined]
        )

    def text(self, node: ast.AST) -> str:
        lo, hi = self.span(node)
        return self.data[lo:hi].decode()

    def operator_edit(self, left: ast.AST, right: ast.AST, old: str, new: str) -> list[_Edit]:
        """Replace the operator token ``old`` that sits between two operands' texts."""
        lo, hi = self.span(left)[1], self.span(right)[0]
        gap = self.data[lo:hi].decode()
        if gap.strip(" ()\n\\") != old:
            return []
        return [(lo, hi, gap.replace(old, new, 1))]

    def nodes(self) -> Iterator[ast.AST]:
        """The body (its docstring left out) and the default values; never the annotations nor an
        error message's f-string (its words are not graded)."""
        body = self.function.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        defaults = [*self.function.args.defaults, *(d for d in self.function.args.kw_defaults if d is not None)]
        for root in [*body, *defaults]:
            for node in ast.walk(root):
                if hasattr(node, "end_col_offset") and not isinstance(node, ast.arg) and not self.in_message(node):
                    yield node

    def in_message(self, node: ast.AST) -> bool:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, ast.JoinedStr):
                return True
        return False

    def replacements(self, node: ast.AST) -> Iterator[tuple[str, ast.AST, list[_Edit]]]:
        """Every ``(operator, replacement, token edits)`` for one node (no edits: unparse it)."""
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                left = node.left if i == 0 else node.comparators[i - 1]
                for new in _COMPARE_SWAPS.get(type(op), ()):
                    ops = [*node.ops[:i], new(), *node.ops[i + 1 :]]
                    edit = self.operator_edit(left, node.comparators[i], _SYMBOLS[type(op)], _SYMBOLS[new])
                    yield "compare", _with(node, ops=ops), edit
        elif isinstance(node, ast.BoolOp):
            new_op: ast.boolop = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            old, new_symbol = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            pairs = zip(node.values, node.values[1:], strict=False)
            edits = [e for a, b in pairs for e in self.operator_edit(a, b, old, new_symbol)]
            yield "boolean", _with(node, op=new_op), edits if len(edits) == len(node.values) - 1 else []
        elif isinstance(node, ast.BinOp | ast.AugAssign):
            left, right = (node.left, node.right) if isinstance(node, ast.BinOp) else (node.target, node.value)
            suffix = "" if isinstance(node, ast.BinOp) else "="
            for arith in _ARITH_SWAPS.get(type(node.op), ()):
                edit = self.operator_edit(left, right, _SYMBOLS[type(node.op)] + suffix, _SYMBOLS[arith] + suffix)
                yield "arith", _with(node, op=arith()), edit
            if isinstance(node, ast.AugAssign):
                assign = ast.Assign([copy.deepcopy(node.target)], copy.deepcopy(node.value), type_comment=None)
                yield "augassign", assign, self.operator_edit(left, right, _SYMBOLS[type(node.op)] + "=", "=")
                yield "delete", ast.Pass(), []
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            yield "constant", ast.Constant(not node.value), []
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            lo, hi = self.span(node)
            yield "constant", ast.Constant(node.value + 1), [(lo, hi, str(node.value + 1))]
            if node.value > 0:
                yield "constant", ast.Constant(node.value - 1), [(lo, hi, str(node.value - 1))]
            else:
                yield "constant", ast.UnaryOp(ast.USub(), ast.Constant(1)), [(lo, hi, "-1")]
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.Not):
            yield "unary", copy.deepcopy(node.operand), []
        elif isinstance(node, ast.Slice):
            for part in ("lower", "upper", "step"):
                bound = getattr(node, part)
                if bound is None:
                    continue
                if part != "step" and not _is_constant(bound):
                    for delta in (1, -1):
                        lo, hi = self.span(bound)
                        moved = f"{self.text(bound)} {'+' if delta > 0 else '-'} 1"
                        yield "slice", _with(node, **{part: _plus(bound, delta)}), [(lo, hi, moved)]
                yield "slice", _with(node, **{part: None}), []
        elif isinstance(node, ast.Raise):
            yield "raise", ast.Pass(), []
        elif isinstance(node, ast.Assign | ast.If):
            elif_branch = isinstance(node, ast.If) and any(node is n for n in getattr(self.parents[node], "orelse", ()))
            if not elif_branch:  # "elif" cannot become "pass"; the raise operator covers its branches
                yield "delete", ast.Pass(), []
        elif isinstance(node, ast.Call):
            callee = ast.unparse(node.func)
            if callee not in _COMMUTATIVE_CALLS:
                yield from self.swaps(node, "args")
            for i, keyword in enumerate(node.keywords):
                if keyword.arg is not None:
                    yield "keyword", _with(node, keywords=node.keywords[:i] + node.keywords[i + 1 :]), []
            if isinstance(node.func, ast.Name) and node.func.id in _NAME_SWAPS:
                lo, hi = self.span(node.func)
                name = _NAME_SWAPS[node.func.id]
                yield "name", _with(node, func=ast.Name(name, ast.Load())), [(lo, hi, name)]
        elif isinstance(node, ast.Tuple):
            parent = self.parents[node]
            is_type_tuple = isinstance(parent, ast.Call) and ast.unparse(parent.func) == "isinstance"
            is_members = isinstance(parent, ast.Compare) and any(
                isinstance(op, ast.In | ast.NotIn) for op in parent.ops
            )
            if not (is_type_tuple or is_members):  # isinstance(x, (A, B)) and x in (A, B) ignore the order
                yield from self.swaps(node, "elts")
        elif isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
            yield "return", ast.Return(ast.Constant(None)), []

    def swaps(self, node: ast.Call | ast.Tuple, attribute: str) -> Iterator[tuple[str, ast.AST, list[_Edit]]]:
        items: list[ast.expr] = getattr(node, attribute)
        for i in range(len(items) - 1):
            a, b = items[i], items[i + 1]
            if isinstance(a, ast.Starred) or isinstance(b, ast.Starred) or ast.dump(a) == ast.dump(b):
                continue
            exchanged = [*items[:i], b, a, *items[i + 2 :]]
            edits = [(*self.span(a), self.text(b)), (*self.span(b), self.text(a))]
            yield "swap", _with(node, **{attribute: copy.deepcopy(exchanged)}), edits

    def mutants(self) -> list[Mutation]:
        """Every distinct mutant, in the order of the nodes (its ``source`` is the mutated segment)."""
        seen = {ast.dump(self.function)}
        found = []
        for node in list(self.nodes()):
            for operator, replacement, edits in self.replacements(node):
                replacement = ast.fix_missing_locations(ast.copy_location(replacement, node))
                undo = _replace_in_tree(self.parents[node], node, replacement)
                intended = ast.dump(self.function)
                undo()
                if intended in seen:
                    continue
                mutated = self.write(node, replacement, edits, intended)
                seen.add(intended)
                found.append(self.describe(operator, mutated))
        return found

    def write(self, node: ast.AST, replacement: ast.AST, edits: list[_Edit], intended: str) -> bytes:
        """The mutated segment: the token edits if they give the intended tree, else the unparsed node."""
        lo, hi = self.span(node)
        text = ast.unparse(replacement)
        bare = text[1:-1] if isinstance(replacement, ast.Tuple) else text  # a subscript's tuple has no parentheses
        candidates = [edits] if edits else []
        candidates += [[(lo, hi, option)] for option in (text, bare, f"({text})")]
        for candidate in candidates:
            mutated = self.data
            for start, end, new in sorted(candidate, reverse=True):
                mutated = mutated[:start] + new.encode() + mutated[end:]
            try:
                parsed = ast.parse(mutated)
            except SyntaxError:
                continue
            if ast.dump(parsed.body[0]) == intended:
                return mutated
        raise AssertionError(f"{self.name}: could not write a mutant of {ast.unparse(node)!r}")

    def describe(self, operator: str, mutated: bytes) -> Mutation:
        """The mutant, with the lines that differ from the reference as ``before`` and ``after``."""
        old, new = self.data.decode().splitlines(), mutated.decode().splitlines()
        top = next(i for i, (a, b) in enumerate(zip(old + [""], new + [""], strict=False)) if a != b)
        bottom = 0
        while bottom < min(len(old), len(new)) - top and old[-1 - bottom] == new[-1 - bottom]:
            bottom += 1
        return Mutation(
            self.name,
            operator,
            self.first_line + top,
            _lines(old[top : len(old) - bottom]),
            _lines(new[top : len(new) - bottom]),
            mutated.decode(),
        )


def _lines(lines: list[str]) -> str:
    """Changed lines for a report: stripped, joined; a block of more than two as its first line."""
    stripped = [line.strip() for line in lines]
    if len(stripped) > 2:
        return f"{stripped[0]} ... ({len(stripped)} lines)"
    return " ".join(stripped) or "(nothing)"


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _replace_in_tree(parent: ast.AST, old: ast.AST, new: ast.AST) -> Callable[[], None]:
    """Put ``new`` where ``old`` hangs under ``parent``; return the function that undoes it."""
    for name, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, name, new)
            return lambda: setattr(parent, name, old)
        if isinstance(value, list) and any(item is old for item in value):
            index = next(i for i, item in enumerate(value) if item is old)
            value[index] = new
            return lambda: value.__setitem__(index, old)
    raise ValueError(f"{ast.dump(old)[:60]} is not a child of {type(parent).__name__}")


def mutations(
    source: str | None = None, *, functions: tuple[str, ...] | None = None, limit: int | None = None
) -> list[Mutation]:
    """Every distinct mutant of the reference's functions, in source order.

    Args:
        source: the module (default: the reference).
        functions: the functions to mutate (default: every function whose grade counts, see
            :func:`function_users`).
        limit: at most this many mutants per function, spread evenly over the function's list.

    Returns:
        The mutants (each ``source`` the whole mutated module).

    Raises:
        ValueError: naming a function in ``functions`` that the module does not define.
    """
    source = source if source is not None else reference_source()
    lines = source.splitlines(keepends=True)
    defined = _functions(ast.parse(source))
    users = function_users(source)
    # Contract functions first, in task order; the helpers (graded through several suites) last.
    every = sorted(users, key=lambda name: (users[name] != (name,), list(users).index(name)))
    wanted = functions if functions is not None else tuple(every)
    unknown = [name for name in wanted if name not in defined]
    if unknown:
        raise ValueError(f"functions={unknown!r}: the reference defines no such function; it has {', '.join(defined)}")
    found: list[Mutation] = []
    for name in wanted:
        start, end = defined[name].lineno - 1, defined[name].end_lineno or defined[name].lineno
        of_function = _FunctionMutator(name, "".join(lines[start:end]), start + 1).mutants()
        if limit is not None and len(of_function) > limit:
            step = len(of_function) / limit
            of_function = [of_function[int(i * step)] for i in range(limit)]
        prefix, suffix = "".join(lines[:start]), "".join(lines[end:])
        found += [replace(m, source=prefix + m.source + suffix) for m in of_function]
    return found


# ---------------------------------------------------------------------------------------------
# Grading: the plugin below keeps only the tests of the tasks a mutant can change.
# ---------------------------------------------------------------------------------------------
_PLUGIN = __name__ if __name__ != "__main__" else "benchmarks.mutation_benchmark"
_TASKS_OPTION = "--mutation-tasks"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Pytest hook (this module is loaded into the hidden suite's run with ``-p``)."""
    parser.addoption(_TASKS_OPTION, default="", help="comma-separated task ids: run only their tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Pytest hook: deselect the tests of every other task (after the grader recorded all weights)."""
    wanted = set(filter(None, str(config.getoption(_TASKS_OPTION)).split(",")))
    if not wanted:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("graded")
        (keep if marker is not None and marker.args[0] in wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Pytest hook: leave out the modules of other parts (``test_part2_*.py`` holds Part 2's tests).

    Collecting every module costs about a third of a short grading; :func:`grade_mutation` checks
    that each wanted task still ran, so a test that moved to another part's module is noticed.
    """
    wanted = {task.split(".")[0] for task in str(config.getoption(_TASKS_OPTION)).split(",") if task}
    match = re.fullmatch(r"test_part(\d+)_\w+\.py", collection_path.name)
    if wanted and match and match.group(1) not in wanted:
        return True
    return None


def _tasks_of(functions: tuple[str, ...]) -> tuple[str, ...]:
    from autograder.tasks import TASKS

    return tuple(task.id for task in TASKS if task.function in functions and "performance" not in task.tags)


def grade_mutation(mutation: Mutation, users: tuple[str, ...]) -> Verdict:
    """Grade one mutant on the tests of ``users``' tasks; killed when one of them loses points.

    Args:
        mutation: the mutant.
        users: the contract functions whose tests must catch it (:func:`function_users`).

    Returns:
        The verdict (``equivalent`` is decided later, by :func:`explain`).
    """
    from autograder.grading import grade
    from autograder.tasks import task_by_id

    started = time.perf_counter()
    fields = (mutation.function, mutation.operator, mutation.line, mutation.before, mutation.after)
    with tempfile.TemporaryDirectory(prefix="wsgrade-mutant-") as folder:
        path = Path(folder) / "weight_sharing.py"
        path.write_text(mutation.source)
        try:
            report = grade(
                path,
                performance=False,
                pytest_args=["-p", _PLUGIN, f"{_TASKS_OPTION}={','.join(_tasks_of(users))}"],
            )
        except Exception as error:  # a broken suite or sandbox: reported, never counted as a kill
            return Verdict(*fields, "error", why=f"{type(error).__name__}: {error}"[:2000])
    relevant = [t for t in report.tests if task_by_id(t.task_id).function in users]
    lost = tuple(
        f"{t.name}: {(t.output.strip().splitlines() or [''])[0][:200]}" for t in relevant if t.score < t.max_score
    )
    status = "killed" if lost else "survived"
    missing = sorted(set(_tasks_of(users)) - {t.task_id for t in relevant})
    if missing:
        status, lost = "error", (f"no test of task(s) {', '.join(missing)} ran",)
    return Verdict(
        *fields,
        status,
        lost,
        internal_errors=sum(t.internal_error for t in relevant),
        seconds=time.perf_counter() - started,
    )


def explain(
    verdict: Verdict, equivalent: tuple[Explained, ...] = EQUIVALENT, needs_gpu: tuple[Explained, ...] = NEEDS_GPU
) -> Verdict:
    """A survivor listed in ``equivalent`` becomes ``equivalent`` (in ``needs_gpu``: ``needs-gpu``), with the reason."""
    if verdict.status != "survived":
        return verdict
    key = (verdict.function, verdict.before, verdict.after)
    for status, table in (("equivalent", equivalent), ("needs-gpu", needs_gpu)):
        reasons = {entry.key: entry.why for entry in table}
        if key in reasons:
            return Verdict(**{**asdict(verdict), "status": status, "why": reasons[key]})
    return verdict


def _grade_job(mutation: Mutation, users: tuple[str, ...]) -> Verdict:
    return explain(grade_mutation(mutation, users))


def run(
    mutants: list[Mutation],
    users: dict[str, tuple[str, ...]],
    *,
    jobs: int,
    progress: Callable[[Verdict, int, int], None],
) -> list[Verdict]:
    """Grade every mutant, ``jobs`` at a time; verdicts come back in the mutants' order.

    ``progress(verdict, done, total)`` is called in this process as each verdict arrives.
    """
    verdicts: dict[int, Verdict] = {}
    if jobs <= 1:
        for index, mutation in enumerate(mutants):
            verdicts[index] = _grade_job(mutation, users[mutation.function])
            progress(verdicts[index], len(verdicts), len(mutants))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {
                pool.submit(_grade_job, mutation, users[mutation.function]): index
                for index, mutation in enumerate(mutants)
            }
            for future in as_completed(futures):
                verdicts[futures[future]] = future.result()
                progress(verdicts[futures[future]], len(verdicts), len(mutants))
    return [verdicts[i] for i in range(len(mutants))]


def summary_table(verdicts: list[Verdict], users: dict[str, tuple[str, ...]]) -> str:
    """The kill rate per function and in all, as text."""
    rows = []
    header = (
        f"{'function':34s} {'mutants':>7s} {'killed':>6s} {'equiv.':>6s} {'GPU':>4s} {'survived':>8s} {'errors':>6s} "
        "kill rate"
    )
    order = list(dict.fromkeys(v.function for v in verdicts))
    for name in [*order, None]:
        group = [v for v in verdicts if name is None or v.function == name]
        statuses = ("killed", "equivalent", "needs-gpu", "survived", "error")
        counts = {s: sum(v.status == s for v in group) for s in statuses}
        scored = len(group) - counts["equivalent"]
        rate = f"{100 * counts['killed'] / scored:8.1f}%" if scored else "        -"
        label = "all" if name is None else name if users.get(name) == (name,) else f"{name} (via {len(users[name])})"
        if name is None:
            rows.append("-" * len(header))
        rows.append(
            f"{label:34s} {len(group):7d} {counts['killed']:6d} {counts['equivalent']:6d} {counts['needs-gpu']:4d} "
            f"{counts['survived']:8d} {counts['error']:6d} {rate}"
        )
    return "\n".join([header, *rows])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status (1 when a mutant survives unexplained)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function", action="append", metavar="NAME", help="mutate only this function (repeatable)")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N mutants per function")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="grading processes (default 1)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every verdict here as JSON")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be at least 1, got {args.limit}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    source = reference_source()
    users = function_users(source)
    if args.function:
        unknown = [name for name in args.function if name not in users]
        if unknown:
            parser.error(f"--function {unknown[0]}: not a graded function of the reference; one of {', '.join(users)}")
    mutants = mutations(source, functions=tuple(args.function) if args.function else None, limit=args.limit)
    print(f"{len(mutants)} mutants of {len({m.function for m in mutants})} functions; grading with {args.jobs} job(s)")
    started = time.perf_counter()

    arrived: list[Verdict] = []

    def progress(verdict: Verdict, done: int, total: int) -> None:
        arrived.append(verdict)
        if args.json and (done % 20 == 0 or done == total):  # a long run that is stopped still leaves its verdicts
            args.json.write_text(json.dumps([v.to_dict() for v in arrived], indent=1) + "\n")
        if verdict.status in ("survived", "error"):
            print(
                f"  {verdict.status}: {verdict.function} line {verdict.line}: {verdict.before}  ->  {verdict.after}",
                file=sys.stderr,
                flush=True,
            )
        if done % 50 == 0 or done == total:
            print(f"  {done}/{total} graded, {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

    verdicts = run(mutants, users, jobs=args.jobs, progress=progress)
    print(summary_table(verdicts, users))
    print(f"({time.perf_counter() - started:.0f} s; helpers are killed through the contract functions that call them)")
    for status, title in (
        ("survived", "SURVIVORS"),
        ("error", "ERRORS"),
        ("needs-gpu", "NEEDS A GPU (only Task 5.3's tests can kill these)"),
        ("equivalent", "EQUIVALENT (EXPLAINED)"),
    ):
        chosen = [v for v in verdicts if v.status == status]
        if chosen:
            print(f"\n{title} ({len(chosen)})")
        for v in chosen:
            print(f"  {v.function} line {v.line} [{v.operator}]: {v.before}  ->  {v.after}")
            if v.why:
                print(f"      {v.why}")
    generated = {m.key for m in mutants}
    tables = (("EQUIVALENT", EQUIVALENT), ("NEEDS_GPU", NEEDS_GPU))
    for title, table in tables:
        stale = [e for e in table if e.key not in generated and (not args.function or e.function in args.function)]
        listed = {entry.key for entry in table}
        killed_but_listed = [v for v in verdicts if v.status == "killed" and (v.function, v.before, v.after) in listed]
        if not args.limit:
            for entry in stale:
                print(f"\nnote: {title} lists a mutant that is no longer generated: {entry.function}: {entry.before}")
        for v in killed_but_listed:
            print(f"\nnote: {title} lists a mutant the tests now kill: {v.function}: {v.before} -> {v.after}")
    internal = [v for v in verdicts if v.internal_errors]
    if internal:
        print(f"\nnote: {len(internal)} mutant(s) broke a test inside the grader (see --json, internal_errors)")
    if args.json:
        args.json.write_text(json.dumps([v.to_dict() for v in verdicts], indent=1) + "\n")
    return 1 if any(v.status in ("survived", "error") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
