"""The worked examples of every task: one table, rendered for each place a student checks their work.

:data:`EXAMPLES` holds, for every untimed task (:data:`autograder.tasks.UNTIMED_TASKS`: all but the
speed and GPU tasks 5.2 and 5.3), its public examples and a few hidden ones as :class:`Example`
records. From that table come

* the visible and hidden checks of the nbgrader test cells (:func:`nbgrader_checks`), which call
  the ``check_close``, ``check_equal`` and ``check_raises`` of :data:`NBGRADER_HELPERS`;
* otter's public and hidden test cells (:func:`otter_checks`): plain ``assert`` statements and
  ``try``/``except`` blocks, which otter turns into doctests run in the student's kernel;
* the release's ``test_public.py`` (:func:`public_tests_module`): one pytest test per public
  example, each importing from ``weight_sharing`` only the functions it calls, so that a function
  not written yet fails only its own tests.

None of them decides a grade (the hidden tests in ``autograder/hidden_tests`` do): they are the
student's quick checks. Every example passes on the reference and fails on the release's stubs
(``tests/test_examples.py``). Code is written as a notebook has it, with ``np`` and the bare function
names: ``conv2d(image, kernel)``. Where a number was worked out by hand, the ``comment`` says how.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from autograder.tasks import contract_functions

__all__ = [
    "ATOL",
    "EXAMPLES",
    "NBGRADER_HELPERS",
    "RTOL",
    "Compare",
    "Example",
    "TaskExamples",
    "functions_called",
    "nbgrader_checks",
    "otter_checks",
    "public_tests_module",
]

#: How an example's value is judged: ``close`` (arrays of the same shape, nearly equal values),
#: ``equal`` (``==``: numbers, tuples, lists), ``raises`` (the call raises ``error``), ``true`` and
#: ``false`` (the value's truth).
Compare = Literal["close", "equal", "raises", "true", "false"]
#: The tolerances of ``close``, in all three renderings.
RTOL = 1e-7
ATOL = 1e-9
#: Longest line the renderings write before they put a call's arguments one per line.
_WIDTH = 120


def _parses(source: str, mode: Literal["exec", "eval"], what: str, field: str) -> None:
    try:
        ast.parse(source, mode=mode)
    except SyntaxError as error:
        kind = "statements" if mode == "exec" else "an expression"
        raise ValueError(f"example {what!r}: {field}={source!r} is not {kind} ({error.msg})") from None


@dataclass(frozen=True)
class Example:
    """One worked example: what it checks, the code that sets it up, the call and the answer.

    Attributes:
        what: the check in a few words, naming the mistake it catches; every rendering prints it.
        call: the expression under test, e.g. ``conv2d(image, kernel)``.
        expected: the answer, an expression (for ``close`` and ``equal`` only).
        compare: how ``call`` is judged against ``expected`` (see :data:`Compare`).
        setup: statements run before the call (names it defines are used by ``call``/``expected``).
        error: the exception type ``call`` must raise (for ``raises`` only).
        comment: how the answer was worked out by hand, shown above the check.

    Raises:
        ValueError: if ``compare`` is unknown, ``expected`` or ``error`` is missing or not wanted
            for it, or a piece of code does not parse.
    """

    what: str
    call: str
    expected: str = ""
    compare: Compare = "close"
    setup: str = ""
    error: type[Exception] | None = None
    comment: str = ""

    def __post_init__(self) -> None:
        if self.compare not in get_args(Compare):
            raise ValueError(
                f"example {self.what!r}: compare={self.compare!r} is not one of {', '.join(get_args(Compare))}"
            )
        if (self.compare in ("close", "equal")) != bool(self.expected):
            need = "needs an" if self.compare in ("close", "equal") else "takes no"
            raise ValueError(f"example {self.what!r}: compare={self.compare!r} {need} expected value")
        if (self.compare == "raises") != (self.error is not None):
            need = "needs an" if self.compare == "raises" else "takes no"
            raise ValueError(f"example {self.what!r}: compare={self.compare!r} {need} error type")
        if not self.what or "\n" in self.what:
            raise ValueError(f"example what={self.what!r}: give one line naming the check")
        _parses(self.call, "eval", self.what, "call")
        if self.expected:
            _parses(self.expected, "eval", self.what, "expected")
        _parses(self.setup, "exec", self.what, "setup")


@dataclass(frozen=True)
class TaskExamples:
    """A task's examples.

    Attributes:
        public: the ones the student sees: the release's test_public.py, nbgrader's visible checks,
            otter's public test.
        hidden: a few more, in nbgrader's hidden checks and otter's hidden test.
    """

    public: tuple[Example, ...]
    hidden: tuple[Example, ...]


_LENET5 = """\
lenet5 = [
    {"type": "conv2d", "out_channels": 6, "kernel_size": 5},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "conv2d", "out_channels": 16, "kernel_size": 5},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "dense", "out_features": 120},
    {"type": "dense", "out_features": 84},
    {"type": "dense", "out_features": 10},
]"""
_TIED_LC = """\
rng = np.random.default_rng(31)
x, w, b = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(4)
lc_w, lc_b = np.broadcast_to(w, (4, 4, 4, 3, 2, 2)), np.broadcast_to(b, (4, 4, 4))"""
_TIED_LC_GRADIENT = """\
rng = np.random.default_rng(62)
x, w = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 2, 2))
dout, tied = rng.standard_normal((2, 3, 4, 4)), np.broadcast_to(w, (4, 4, 3, 2, 2, 2))"""
_STRIDE_PADDING = "padding 1, stride 2: a 2x2 output; the top-left window sums 0 + 1 + 4 + 5 = 10, plus the bias 0.5"

#: Setups that several examples of Tasks 6.1 and 6.2 share.
_CONV_GRADIENT_2X2 = "x = np.arange(9.0).reshape(1, 1, 3, 3)\nw, dout = np.ones((1, 1, 2, 2)), np.ones((1, 1, 2, 2))"
_CONV_GRADIENT_PADDED = "x = np.arange(9.0).reshape(1, 1, 3, 3)\nw, dout = np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3))"
_LC_GRADIENT_1X1 = (
    "x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])\n"
    "weight = np.array([5.0, 6.0, 7.0, 8.0]).reshape(2, 2, 1, 1, 1, 1)\n"
    "dout = np.ones((1, 1, 2, 2))"
)
_LC_GRADIENT_2X2 = (
    "x = np.arange(9.0).reshape(1, 1, 3, 3)\nweight, dout = np.ones((2, 2, 1, 1, 2, 2)), np.ones((1, 1, 2, 2))"
)

#: A layer with stride 2 (subsample, then repeat back to the size): equivariant to even shifts only.
_SUBSAMPLE_THEN_REPEAT = (
    "x = np.random.default_rng(44).standard_normal((1, 2, 6, 6))\n"
    "\n"
    "\n"
    "def subsample_then_repeat(v):\n"
    "    return np.repeat(np.repeat(v[..., ::2, ::2], 2, axis=-2), 2, axis=-1)"
)

#: Task id -> its examples. Every example calls its task's function (or its setup does).
EXAMPLES: dict[str, TaskExamples] = {
    "1.1": TaskExamples(
        public=(
            Example(
                "conv2d does not flip the kernel",
                "conv2d(image, kernel)",
                "[[-4.0, -4.0], [-4.0, -4.0]]",
                setup="image = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])\n"
                "kernel = np.array([[1.0, 0.0], [0.0, -1.0]])",
                comment="out[0, 0] = 1*1 + 2*0 + 4*0 + 5*(-1) = -4: the kernel is NOT flipped (cross-correlation)",
            ),
            Example(
                "conv2d output shape",
                "conv2d(np.ones((5, 7)), np.ones((2, 3))).shape",
                "(4, 5)",
                "equal",
                comment="(5 - 2 + 1, 7 - 3 + 1)",
            ),
            Example(
                "conv2d: kernel larger than the image",
                "conv2d(np.ones((2, 2)), np.ones((3, 3)))",
                compare="raises",
                error=ValueError,
            ),
            Example(
                "conv2d: 3-D image", "conv2d(np.ones((2, 2, 2)), np.ones((1, 1)))", compare="raises", error=ValueError
            ),
        ),
        hidden=(
            Example(
                "conv2d with a rectangular kernel",
                "conv2d(np.arange(12.0).reshape(3, 4), np.array([[1.0, 2.0]]))",
                "[[2.0, 5.0, 8.0], [14.0, 17.0, 20.0], [26.0, 29.0, 32.0]]",
                comment="out[0, 0] = 0*1 + 1*2 = 2",
            ),
        ),
    ),
    "1.2": TaskExamples(
        public=(
            Example(
                "conv2d_layer with bias, stride 2 and padding 1",
                "conv2d_layer(x, np.ones((1, 1, 3, 3)), np.array([0.5]), stride=2, padding=1)",
                "[[[[10.5, 24.5], [51.5, 90.5]]]]",
                setup="x = np.arange(16.0).reshape(1, 1, 4, 4)",
                comment=_STRIDE_PADDING,
            ),
        ),
        hidden=(
            Example(
                "conv2d_layer sums conv2d over input channels",
                "conv2d_layer(x, w)",
                "[[sum(conv2d(x[n, c], w[o, c]) for c in range(3)) for o in range(4)] for n in range(2)]",
                setup="rng = np.random.default_rng(12)\n"
                "x, w = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 2, 3))",
            ),
            Example(
                "conv2d_layer output shape, stride and padding given by position",
                "conv2d_layer(np.ones((2, 3, 7, 6)), np.ones((4, 3, 3, 2)), None, 2, 1).shape",
                "(2, 4, 4, 4)",
                "equal",
                comment="(7 + 2*1 - 3) // 2 + 1 = 4 rows, (6 + 2*1 - 2) // 2 + 1 = 4 columns",
            ),
            Example(
                "conv2d_layer: mismatched channels",
                "conv2d_layer(np.ones((1, 2, 4, 4)), np.ones((1, 3, 2, 2)))",
                compare="raises",
                error=ValueError,
            ),
            Example(
                "conv2d_layer: stride 0",
                "conv2d_layer(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)), stride=0)",
                compare="raises",
                error=ValueError,
            ),
        ),
    ),
    "2.1": TaskExamples(
        public=(
            Example("conv_output_size(32, 5)", "conv_output_size(32, 5)", "28", "equal", comment="32 - 5 + 1"),
            Example(
                "AlexNet's first layer",
                "conv_output_size(224, 11, stride=4, padding=2)",
                "55",
                "equal",
                comment="(224 + 2*2 - 11) // 4 + 1",
            ),
        ),
        hidden=(
            Example(
                "conv_output_size(7, 3, stride=2, padding=1)",
                "conv_output_size(7, 3, stride=2, padding=1)",
                "4",
                "equal",
                comment="(7 + 2*1 - 3) // 2 + 1",
            ),
            Example(
                "conv_output_size: the kernel does not fit",
                "conv_output_size(2, 5)",
                compare="raises",
                error=ValueError,
            ),
        ),
    ),
    "2.2": TaskExamples(
        public=(
            Example(
                "dense 1024 -> 64 without bias",
                "dense_params(1024, 64, bias=False)",
                "65_536",
                "equal",
                comment="1024 * 64",
            ),
        ),
        hidden=(Example("dense 10 -> 3 with bias", "dense_params(10, 3)", "33", "equal", comment="10 * 3 + 3"),),
    ),
    "2.3": TaskExamples(
        public=(
            Example("eight 3x3 filters", "conv2d_params(1, 8, 3, bias=False)", "72", "equal", comment="8 * 1 * 3 * 3"),
            Example(
                "VGG's first layer", "conv2d_params(3, 64, (3, 3))", "1_792", "equal", comment="64 * 3 * 3 * 3 + 64"
            ),
        ),
        hidden=(
            Example(
                "a rectangular kernel with bias",
                "conv2d_params(3, 4, (2, 5))",
                "124",
                "equal",
                comment="4 * 3 * 2 * 5 + 4",
            ),
        ),
    ),
    "2.4": TaskExamples(
        public=(
            Example(
                "the slide's unshared 3x3 filter",
                "locally_connected2d_params(224, 1, 1, 3, bias=False)",
                "443_556",
                "equal",
                comment='222 * 222 positions with 9 weights each, not "about 148,000"',
            ),
        ),
        hidden=(
            Example(
                "rectangular input and kernel",
                "locally_connected2d_params((5, 6), 2, 3, (2, 3))",
                "624",
                "equal",
                comment="4 * 4 positions, each 3 filters of 2 * 2 * 3 weights and 3 biases: 16 * 39",
            ),
            Example(
                "locally_connected2d_params with stride 2",
                "locally_connected2d_params((5, 6), 1, 1, 2, stride=2)",
                "30",
                "equal",
                comment="2 * 3 positions, each 4 weights and a bias",
            ),
        ),
    ),
    "2.5": TaskExamples(
        public=(
            Example(
                "LeNet-5's first shapes",
                "[tuple(shape) for shape, _ in network_summary(lenet5, (1, 32, 32))[:2]]",
                "[(6, 28, 28), (6, 14, 14)]",
                "equal",
                setup=_LENET5,
            ),
            Example(
                "LeNet-5's parameters",
                "sum(params for _, params in network_summary(lenet5, (1, 32, 32)))",
                "61_706",
                "equal",
                setup=_LENET5,
                comment="156 + 0 + 2,416 + 0 + 0 + 48,120 + 10,164 + 850",
            ),
            Example(
                "the summary of each layer",
                "network_summary(layers, (1, 32, 32))",
                "[((6, 28, 28), 156), ((6, 14, 14), 0), ((1176,), 0), ((10,), 11_770)]",
                "equal",
                setup="layers = [\n"
                '    {"type": "conv2d", "out_channels": 6, "kernel_size": 5},\n'
                '    {"type": "maxpool2d", "kernel_size": 2},\n'
                '    {"type": "flatten"},\n'
                '    {"type": "dense", "out_features": 10},\n'
                "]",
                comment="6 * 1 * 5 * 5 + 6 = 156; 6 * 14 * 14 = 1,176 features; 1,176 * 10 + 10 = 11,770",
            ),
        ),
        hidden=(
            Example(
                "a padded conv layer",
                "network_summary(padded, (3, 8, 8))",
                "[((4, 8, 8), 112)]",
                "equal",
                setup='padded = [{"type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1}]',
                comment="4 * 3 * 3 * 3 + 4 = 112",
            ),
            Example(
                "network_summary: unknown layer",
                'network_summary([{"type": "softmax2d"}], (1, 4, 4))',
                compare="raises",
                error=ValueError,
            ),
            Example(
                "network_summary: dense before flatten",
                'network_summary([{"type": "dense", "out_features": 2}], (1, 4, 4))',
                compare="raises",
                error=ValueError,
            ),
        ),
    ),
    "3.1": TaskExamples(
        public=(
            Example(
                "per-position 1x1 filters with bias",
                "locally_connected2d(x, weight, np.ones((3, 3, 1)))",
                "x**2 + 1",
                setup="x = np.arange(9.0).reshape(1, 1, 3, 3)\n"
                "weight = np.arange(9.0).reshape(3, 3, 1, 1, 1, 1)  # a 1x1 filter of its own at each position",
                comment="position (i, j) multiplies x[i, j] by its own weight, which is x[i, j] too, and adds 1",
            ),
            Example(
                "each position has its own filter",
                "locally_connected2d(np.arange(9.0).reshape(1, 1, 3, 3), weight)",
                "[[[[8.0, 12.0], [20.0, 48.0]]]]",
                setup="weight = np.ones((2, 2, 1, 1, 2, 2))\nweight[1, 1] = 2.0",
                comment="each 2x2 window's sum (0 + 1 + 3 + 4 = 8 at the top left), doubled at position (1, 1)",
            ),
            Example(
                "tied weights give the convolution",
                "locally_connected2d(x, lc_w, lc_b)",
                "conv2d_layer(x, w, b)",
                setup=_TIED_LC,
            ),
        ),
        hidden=(
            Example(
                "locally_connected2d: positions do not match",
                "locally_connected2d(np.ones((1, 1, 4, 4)), np.ones((2, 2, 1, 1, 2, 2)))",
                compare="raises",
                error=ValueError,
            ),
            Example(
                "a bias of its own at each position",
                "locally_connected2d(np.zeros((1, 1, 3, 3)), np.ones((2, 2, 1, 1, 2, 2)), bias)",
                "[[[[0.0, 1.0], [2.0, 3.0]]]]",
                setup="bias = np.arange(4.0).reshape(2, 2, 1)",
            ),
        ),
    ),
    "3.2": TaskExamples(
        public=(
            Example(
                "conv_as_locally_connected shapes",
                "[array.shape for array in conv_as_locally_connected(w, b, (2, 3))]",
                "[(2, 3, 4, 3, 2, 1), (2, 3, 4)]",
                "equal",
                setup="w, b = np.arange(24.0).reshape(4, 3, 2, 1), np.arange(4.0)",
                comment="(H_out, W_out) positions, each with the (C_out, C_in, kh, kw) filters and the C_out biases",
            ),
            Example(
                "every position holds the conv filters",
                "conv_as_locally_connected(w, b, (2, 3))[0][1, 2]",
                "w",
                setup="w, b = np.arange(24.0).reshape(4, 3, 2, 1), np.arange(4.0)",
            ),
            Example(
                "every position holds the conv biases",
                "conv_as_locally_connected(w, b, (2, 3))[1][1, 2]",
                "b",
                setup="w, b = np.arange(24.0).reshape(4, 3, 2, 1), np.arange(4.0)",
            ),
        ),
        hidden=(
            Example(
                "no bias in, no bias out",
                "conv_as_locally_connected(w, None, 2)[1] is None",
                compare="true",
                setup="w = np.arange(24.0).reshape(4, 3, 2, 1)",
            ),
            Example(
                "the conv weights are not changed through the result",
                "w",
                "np.arange(24.0).reshape(4, 3, 2, 1)",
                setup="w = np.arange(24.0).reshape(4, 3, 2, 1)\n"
                "lc_w, _ = conv_as_locally_connected(w, None, (2, 3))\n"
                "lc_w[0, 0] += 1.0  # the result must be a new, writeable array",
            ),
        ),
    ),
    "4.1": TaskExamples(
        public=(
            Example(
                "shift down",
                "shift2d(x, 1, 0)",
                "[[0.0, 0.0], [1.0, 2.0]]",
                setup="x = np.array([[1.0, 2.0], [3.0, 4.0]])",
                comment="dy > 0 moves the content down; zeros come in at the top",
            ),
            Example(
                "shift left",
                "shift2d(x, 0, -1)",
                "[[2.0, 0.0], [4.0, 0.0]]",
                setup="x = np.array([[1.0, 2.0], [3.0, 4.0]])",
            ),
            Example(
                "circular shift right",
                "shift2d(x, 0, 1, circular=True)",
                "[[2.0, 1.0], [4.0, 3.0]]",
                setup="x = np.array([[1.0, 2.0], [3.0, 4.0]])",
                comment="what leaves on the right comes back on the left",
            ),
        ),
        hidden=(
            Example("a shift down larger than the image", "shift2d(np.ones((2, 3, 3)), 5, 0)", "np.zeros((2, 3, 3))"),
            Example("a shift right larger than the image", "shift2d(np.ones((2, 2)), 0, 5)", "np.zeros((2, 2))"),
            Example("shift2d: 1-D input", "shift2d(np.ones(3), 1, 0)", compare="raises", error=ValueError),
        ),
    ),
    "4.2": TaskExamples(
        public=(
            Example(
                "the centre tap is the identity",
                "circular_conv2d(x, w)",
                "x",
                setup="x = np.arange(12.0).reshape(1, 1, 3, 4)\nw = np.zeros((1, 1, 3, 3))\nw[0, 0, 1, 1] = 1.0",
            ),
            Example(
                "the right-hand tap reads the right neighbour",
                "circular_conv2d(x, w)",
                "np.roll(x, -1, axis=3)",
                setup="x = np.arange(12.0).reshape(1, 1, 3, 4)\nw = np.zeros((1, 1, 3, 3))\nw[0, 0, 1, 2] = 1.0",
                comment="out[..., i, j] = x[..., i, j + 1], the last column reading the first: a roll to the left",
            ),
            Example(
                "each channel's centre tap passes it through",
                "circular_conv2d(x, identity)",
                "x",
                setup="x = np.arange(18.0).reshape(1, 2, 3, 3)\n"
                "identity = np.zeros((2, 2, 3, 3))\n"
                "identity[0, 0, 1, 1] = identity[1, 1, 1, 1] = 1.0",
            ),
        ),
        hidden=(
            Example(
                "circular_conv2d: even kernel",
                "circular_conv2d(np.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)))",
                compare="raises",
                error=ValueError,
            ),
            Example(
                "circular_conv2d with a bias",
                "circular_conv2d(x, w, np.array([2.0]))",
                "np.roll(x, -1, axis=3) + 2.0",
                setup="x = np.arange(12.0).reshape(1, 1, 3, 4)\nw = np.zeros((1, 1, 3, 3))\nw[0, 0, 1, 2] = 1.0",
            ),
        ),
    ),
    "4.3": TaskExamples(
        public=(
            Example(
                "a pointwise layer is equivariant",
                "equivariance_error(lambda v: 2 * v, x, 1, 2)",
                "0.0",
                "equal",
                setup="x = np.arange(16.0).reshape(1, 1, 4, 4)",
            ),
            Example(
                "a position-dependent bias",
                "equivariance_error(lambda v: v + position_bias, x, 1, 2)",
                "np.abs(position_bias - np.roll(position_bias, (1, 2), axis=(0, 1))).max()",
                "equal",
                setup="x = np.arange(16.0).reshape(1, 1, 4, 4)\nposition_bias = np.arange(16.0).reshape(4, 4)",
                comment="layer(shift(x)) - shift(layer(x)) = bias - shift(bias), wherever x is",
            ),
            Example(
                "circular convolution is equivariant",
                "equivariance_error(lambda v: circular_conv2d(v, w), x, 2, -1) < 1e-12",
                compare="true",
                setup="rng = np.random.default_rng(1)\n"
                "x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))",
            ),
        ),
        hidden=(
            Example(
                "a constant bias, a 2-D input and a negative shift",
                "equivariance_error(lambda v: v + 1.0, np.arange(16.0).reshape(4, 4), 3, -2)",
                "0.0",
                "equal",
            ),
            Example(
                "equivariance_error: the layer changes the size",
                "equivariance_error(lambda v: v[..., 1:, :], np.arange(16.0).reshape(1, 1, 4, 4), 1, 0)",
                compare="raises",
                error=ValueError,
            ),
        ),
    ),
    "4.4": TaskExamples(
        public=(
            Example(
                "circular conv",
                "is_shift_equivariant(lambda v: circular_conv2d(v, w), x, [(1, 0), (0, 1), (2, 3)])",
                compare="true",
                setup="rng = np.random.default_rng(44)\n"
                "x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))",
            ),
            Example(
                "a position-dependent bias",
                "is_shift_equivariant(lambda v: v + position_bias, x, [(1, 0)])",
                compare="false",
                setup="x = np.arange(72.0).reshape(1, 2, 6, 6)\nposition_bias = np.arange(36.0).reshape(6, 6)",
            ),
        ),
        hidden=(
            Example(
                "stride 2, even shifts",
                "is_shift_equivariant(subsample_then_repeat, x, [(2, 0), (0, 4)])",
                compare="true",
                setup=_SUBSAMPLE_THEN_REPEAT,
            ),
            Example(
                "stride 2, an odd shift last",
                "is_shift_equivariant(subsample_then_repeat, x, [(2, 0), (1, 0)])",
                compare="false",
                setup=_SUBSAMPLE_THEN_REPEAT,
            ),
            Example(
                "a layer that changes the size",
                "is_shift_equivariant(lambda v: v[..., 1:, 1:], np.ones((1, 2, 6, 6)), [(1, 0)])",
                compare="false",
            ),
        ),
    ),
    "5.1": TaskExamples(
        public=(
            Example(
                "conv2d_fast matches conv2d_layer",
                "conv2d_fast(x, w, b, stride=2, padding=1)",
                "conv2d_layer(x, w, b, stride=2, padding=1)",
                setup="rng = np.random.default_rng(51)\n"
                "x = rng.standard_normal((2, 3, 9, 8))\n"
                "w, b = rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)",
            ),
            Example(
                "conv2d_fast with bias, stride 2 and padding 1",
                "conv2d_fast(x, np.ones((1, 1, 3, 3)), np.array([0.5]), stride=2, padding=1)",
                "[[[[10.5, 24.5], [51.5, 90.5]]]]",
                setup="x = np.arange(16.0).reshape(1, 1, 4, 4)",
                comment=_STRIDE_PADDING,
            ),
        ),
        hidden=(
            Example(
                "conv2d_fast: mismatched channels",
                "conv2d_fast(np.ones((1, 2, 4, 4)), np.ones((1, 3, 2, 2)))",
                compare="raises",
                error=ValueError,
            ),
            Example(
                "a 1x1 kernel across two channels",
                "conv2d_fast(x, np.array([1.0, -1.0]).reshape(1, 2, 1, 1))",
                "x[:, :1] - x[:, 1:]",
                setup="x = np.arange(18.0).reshape(1, 2, 3, 3)",
            ),
        ),
    ),
    "6.1": TaskExamples(
        public=(
            Example(
                "the bias gradient is a sum over the 4 positions",
                "conv2d_backward(dout, x, w)[2]",
                "[4.0]",
                setup=_CONV_GRADIENT_2X2,
                comment="(dx, dw, db)[2]: the bias was used at 4 positions, so its gradient is summed over them",
            ),
            Example(
                "the weight gradient is a sum over positions",
                "conv2d_backward(dout, x, w)[1]",
                "[[[[8.0, 12.0], [20.0, 24.0]]]]",
                setup=_CONV_GRADIENT_2X2,
                comment="dw[0, 0, 0, 0] = x[0, 0] + x[0, 1] + x[1, 0] + x[1, 1] = 0 + 1 + 3 + 4 = 8",
            ),
            Example(
                "the input gradient",
                "conv2d_backward(dout, x, w)[0]",
                "[[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]",
                setup=_CONV_GRADIENT_2X2,
                comment="each input pixel collects a 1 from every window that covers it",
            ),
        ),
        hidden=(
            Example(
                "the input gradient with padding 1",
                "conv2d_backward(dout, x, w, padding=1)[0]",
                "[[[[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]]]",
                setup=_CONV_GRADIENT_PADDED,
            ),
            Example(
                "the bias gradient with padding 1",
                "conv2d_backward(dout, x, w, padding=1)[2]",
                "[9.0]",
                setup=_CONV_GRADIENT_PADDED,
            ),
            Example(
                "the gradients' shapes with stride 2 and padding 1",
                "[g.shape for g in conv2d_backward(dout, x, w, 2, 1)]",
                "[(2, 2, 6, 6), (3, 2, 2, 2), (3,)]",
                "equal",
                setup="dout, x, w = np.ones((2, 3, 4, 4)), np.ones((2, 2, 6, 6)), np.ones((3, 2, 2, 2))",
                comment="(dx, dw, db) have the shapes of x, w and the bias",
            ),
        ),
    ),
    "6.2": TaskExamples(
        public=(
            Example(
                "the input gradient of per-position 1x1 filters",
                "locally_connected2d_backward(dout, x, weight)[0]",
                "weight.reshape(1, 1, 2, 2)",
                setup=_LC_GRADIENT_1X1,
                comment="(dx, dw, db)[0]: each pixel is seen by one position only, through that position's weight",
            ),
            Example(
                "each position's weight gradient",
                "locally_connected2d_backward(dout, x, weight)[1]",
                "x.reshape(2, 2, 1, 1, 1, 1)",
                setup=_LC_GRADIENT_1X1,
            ),
            Example(
                "each position's bias gradient",
                "locally_connected2d_backward(dout, x, weight)[2]",
                "np.ones((2, 2, 1))",
                setup=_LC_GRADIENT_1X1,
            ),
            Example(
                "no sum over positions in the weight gradient",
                "locally_connected2d_backward(dout, x, weight)[1][0, 0, 0, 0]",
                "[[0.0, 1.0], [3.0, 4.0]]",
                setup=_LC_GRADIENT_2X2,
                comment="position (0, 0) saw only its own window, x[0:2, 0:2]",
            ),
            Example(
                "the input gradient of 2x2 filters",
                "locally_connected2d_backward(dout, x, weight)[0]",
                "[[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]",
                setup=_LC_GRADIENT_2X2,
                comment="each input pixel collects a 1 from every window that covers it",
            ),
            Example(
                "summed over positions, the tied gradient is the conv gradient",
                "locally_connected2d_backward(dout, x, tied)[1].sum(axis=(0, 1))",
                "conv2d_backward(dout, x, w)[1]",
                setup=_TIED_LC_GRADIENT,
            ),
            Example(
                "one bias gradient per position",
                "locally_connected2d_backward(dout, x, tied)[2].shape",
                "(4, 4, 3)",
                "equal",
                setup=_TIED_LC_GRADIENT,
            ),
        ),
        hidden=(
            Example(
                "the gradients' shapes with stride 2",
                "[g.shape for g in locally_connected2d_backward(dout, x, weight, 2)]",
                "[(2, 2, 4, 4), (2, 2, 3, 2, 2, 2), (2, 2, 3)]",
                "equal",
                setup="dout, x, weight = np.ones((2, 3, 2, 2)), np.ones((2, 2, 4, 4)), np.ones((2, 2, 3, 2, 2, 2))",
                comment="(dx, dw, db) have the shapes of x, the weight and the bias, (H_out, W_out, C_out)",
            ),
        ),
    ),
}

#: The cell of the nbgrader source notebook that defines the checks :func:`nbgrader_checks` calls.
NBGRADER_HELPERS = f'''# The checks the test cells use. This cell is read-only.
import numpy as np


def check_close(got, expected, what):
    """Fail unless ``got`` is an array of ``expected``'s shape with (nearly) the same values."""
    expected = np.asarray(expected, dtype=float)
    if not isinstance(got, np.ndarray):
        raise AssertionError(f"{{what}}: expected an array, got {{type(got).__name__}}")
    if got.shape != expected.shape:
        raise AssertionError(f"{{what}}: expected shape {{expected.shape}}, got {{got.shape}}")
    if not np.allclose(got, expected, rtol={RTOL!r}, atol={ATOL!r}):
        raise AssertionError(f"{{what}}:\\nexpected\\n{{expected}}\\ngot\\n{{got}}")
    print("ok:", what)


def check_equal(got, expected, what):
    """Fail unless ``got == expected`` (numbers, tuples, booleans)."""
    if not got == expected:
        raise AssertionError(f"{{what}}: expected {{expected!r}}, got {{got!r}}")
    print("ok:", what)


def check_raises(call, error, what):
    """Fail unless ``call()`` raises ``error``."""
    try:
        call()
    except error:
        print("ok:", what)
        return
    raise AssertionError(f"{{what}}: expected {{error.__name__}}")
'''


def _string(text: str) -> str:
    """``text`` as a double-quoted Python string literal."""
    return json.dumps(text, ensure_ascii=False)


def _call(function: str, args: Sequence[str], indent: str = "") -> list[str]:
    """``function(arg, ...)`` on one line, or with one argument a line where that is too long."""
    line = f"{indent}{function}({', '.join(args)})"
    if len(line) <= _WIDTH:
        return [line]
    return [f"{indent}{function}(", *(f"{indent}    {arg}," for arg in args), f"{indent})"]


def _comment(example: Example, indent: str = "") -> list[str]:
    """The example's comment as ``#`` lines that fit the width."""
    if not example.comment:
        return []
    return textwrap.wrap(
        example.comment, _WIDTH - len(indent), initial_indent=indent + "# ", subsequent_indent=indent + "# "
    )


def _error_name(example: Example) -> str:
    assert example.error is not None  # __post_init__ checked it for raises
    return example.error.__name__


def _nbgrader_check(example: Example) -> list[str]:
    what = _string(example.what)
    if example.compare == "raises":
        return _call("check_raises", [f"lambda: {example.call}", _error_name(example), what])
    if example.compare == "close":
        return _call("check_close", [example.call, example.expected, what])
    expected = {"equal": example.expected, "true": "True", "false": "False"}[example.compare]
    return _call("check_equal", [example.call, expected, what])


def _operand(expression: str) -> str:
    """``expression``, in parentheses where it binds more loosely than ``==`` and ``not``."""
    loose = (ast.Lambda, ast.IfExp, ast.BoolOp, ast.NamedExpr, ast.Compare, ast.UnaryOp)
    return f"({expression})" if isinstance(ast.parse(expression, mode="eval").body, loose) else expression


def _condition(example: Example, value: str) -> str:
    """What an ``equal``, ``true`` or ``false`` example asserts about ``value``."""
    if example.compare == "equal":
        return f"{value} == {_operand(example.expected)}"
    return value if example.compare == "true" else f"not {value}"


def _assert_check(example: Example, indent: str = "") -> list[str]:
    """The check as plain Python (otter's cells); ``raises`` as try/except."""
    what = _string(example.what)
    if example.compare == "raises":
        message = _string(f"{example.what}: expected {_error_name(example)}")
        return [
            f"{indent}try:",
            f"{indent}    {example.call}",
            f"{indent}except {_error_name(example)}:",
            f"{indent}    pass",
            f"{indent}else:",
            f"{indent}    raise AssertionError({message})",
        ]
    if example.compare == "close":
        args = [example.call, example.expected, f"rtol={RTOL!r}", f"atol={ATOL!r}", f"err_msg={what}"]
        return _call("np.testing.assert_allclose", args, indent)
    line = f"{indent}assert {_condition(example, _operand(example.call))}, {what}"
    if len(line) <= _WIDTH:
        return [line]
    # too long for one line: name the value first
    return [f"{indent}got = {example.call}", f"{indent}assert {_condition(example, 'got')}, {what}"]


def _block(examples: Sequence[Example], *, otter: bool = False) -> str:
    """The checks of ``examples`` one after another, each setup written once while it repeats."""
    lines: list[str] = []
    previous: str | None = None
    for example in examples:
        if example.setup != previous:
            if lines:
                lines.append("")
            lines += example.setup.splitlines()
            if lines and lines[-1][:1].isspace():  # the setup ends in a function body
                lines += ["", ""]
            previous = example.setup
        if otter:
            lines += _assert_check(example)
        else:
            lines += _comment(example)
            lines += _nbgrader_check(example)
    return "\n".join(lines).strip("\n")


def _task(task_id: str) -> TaskExamples:
    """The task's examples; a KeyError naming the tasks that have some."""
    try:
        return EXAMPLES[task_id]
    except KeyError:
        raise KeyError(f"no examples for task {task_id!r}; tasks with examples: {', '.join(EXAMPLES)}") from None


def nbgrader_checks(task_id: str) -> tuple[str, str]:
    """The visible and the hidden checks of a task's nbgrader test cell.

    Args:
        task_id: e.g. ``"1.1"``.

    Returns:
        ``(visible, hidden)``: code that calls the helpers of :data:`NBGRADER_HELPERS`, each check
        printing ``ok: <what>`` or raising ``AssertionError`` naming it.

    Raises:
        KeyError: if the task has no examples (the timed tasks 5.2 and 5.3).
    """
    examples = _task(task_id)
    return _block(examples.public), _block(examples.hidden)


def otter_checks(task_id: str) -> tuple[str, str]:
    """The public and the hidden test cell of a task's otter question (without the ``# HIDDEN`` line).

    Args:
        task_id: e.g. ``"1.1"``.

    Returns:
        ``(public, hidden)``: plain asserts, ``np.testing.assert_allclose`` and try/except blocks
        that print nothing when they pass, as otter's doctests need. Comments are left out: otter
        drops them when it makes the doctests.

    Raises:
        KeyError: if the task has no examples (the timed tasks 5.2 and 5.3).
    """
    examples = _task(task_id)
    return _block(examples.public, otter=True), _block(examples.hidden, otter=True)


def functions_called(source: str) -> list[str]:
    """The contract functions ``source`` names, sorted: what a test of it imports."""
    names = {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    return sorted(names & set(contract_functions()))


def _test_name(task_id: str, example: Example) -> str:
    """``test_1_1_conv2d_output_shape``: the task id and the example's ``what``."""
    words = re.sub(r"[^a-z0-9]+", "_", example.what.lower().replace("'", "")).strip("_")
    return f"test_{task_id.replace('.', '_')}_{words}"


def _pytest_check(example: Example) -> list[str]:
    """The check in a pytest test's body; ``raises`` as ``pytest.raises``."""
    indent = " " * 4
    if example.compare == "raises":
        return [
            f"{indent}with pytest.raises({_error_name(example)}):  # {example.what}",
            f"{indent}    {example.call}",
        ]
    return _assert_check(example, indent)


_PUBLIC_TESTS_DOCSTRING = '''\
"""Public examples for the weight-sharing problem set. Run them with ``pytest test_public.py``.

Each test imports only the functions it checks, so a function you have not written yet fails only
its own tests. The expected values were worked out by hand (the comments show how) or come from a
function of an earlier task. The grader runs these ideas on many more inputs; passing this file is
a good sign, not a guarantee.

Generated by `wsgrade release` (the notebook's checks are the same examples); do not edit the copy
in the course repository.
"""
'''


def public_tests_module() -> str:
    """The release's ``test_public.py``: one pytest test per public example, in task order.

    Returns:
        The module's source.
    """
    tests = []
    for task_id, examples in EXAMPLES.items():
        for example in examples.public:
            code = "\n".join([example.setup, example.call, example.expected])
            body = [f"    from weight_sharing import {', '.join(functions_called(code))}", ""]
            body += textwrap.indent(example.setup, " " * 4).splitlines()
            body += _comment(example, " " * 4)
            body += _pytest_check(example)
            tests.append("\n".join([f"def {_test_name(task_id, example)}():", *body]))
    uses_pytest = any(e.compare == "raises" for examples in EXAMPLES.values() for e in examples.public)
    imports = "import numpy as np\n" + ("import pytest\n" if uses_pytest else "")
    return _PUBLIC_TESTS_DOCSTRING + "\n" + imports + "\n\n" + "\n\n\n".join(tests) + "\n"
