"""The hidden suite's own machinery: the memory layouts it sends, and hints that need values to match."""

from __future__ import annotations

import importlib
import textwrap
import warnings
from collections.abc import Iterator
from types import ModuleType

import numpy as np
import pytest

from autograder.checks import plain, reproduces
from autograder.feedback import Hint, matching_hint
from autograder.hidden_tests.strategies import LAYOUTS, LayerCase, layout_view
from autograder.reference import load_reference
from autograder.sandbox.client import Limits, Sandbox
from autograder.submission import PreparedSubmission

PROBE = """
import numpy as np

def probe(x):
    # How the array looks from inside the student's function.
    return (bool(x.flags["C_CONTIGUOUS"]), bool(x.flags["F_CONTIGUOUS"]), min(x.strides) < 0, x.copy())
"""

#: For each layout of a 3-D array: (C-contiguous, F-contiguous, has a negative stride) as the student sees it.
EXPECTED_FLAGS = {
    "c": (True, False, False),
    "fortran": (False, True, False),
    "swapped": (False, False, False),
    "strided": (False, False, False),
    "reversed": (False, False, True),
}


@pytest.fixture(scope="module")
def probe_box() -> Iterator[Sandbox]:
    submission = PreparedSubmission("module", (textwrap.dedent(PROBE),), "weight_sharing.py", "<test>", "0" * 64)
    with Sandbox(submission, ("probe",), Limits(call_timeout=5.0)) as box:
        yield box


def test_every_layout_is_drawn() -> None:
    assert set(LAYOUTS) == set(EXPECTED_FLAGS)


@pytest.mark.parametrize("layout", sorted(EXPECTED_FLAGS))
@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 3, 4), (1, 2, 3, 4)])
def test_a_layout_keeps_the_values(layout: str, shape: tuple[int, ...]) -> None:
    array = np.arange(float(np.prod(shape))).reshape(shape)
    np.testing.assert_array_equal(plain(layout_view(array, layout)), array)


@pytest.mark.parametrize("layout", sorted(EXPECTED_FLAGS))
def test_the_student_receives_the_layout(probe_box: Sandbox, layout: str) -> None:
    """What arrives in the worker really is Fortran-ordered, negatively strided, ... (not a copy)."""
    array = np.arange(24.0).reshape(2, 3, 4)
    c_order, f_order, negative, values = probe_box.call("probe", (layout_view(array, layout),), argnames=("x",)).value
    assert (c_order, f_order, negative) == EXPECTED_FLAGS[layout]
    np.testing.assert_array_equal(values, array)


def test_an_unknown_layout_is_refused() -> None:
    with pytest.raises(ValueError, match="layout must be one of"):
        layout_view(np.ones((2, 2)), "diagonal")


# ---------------------------------------------------------------------------------------------
# Hints: a replayed mistake must give the student's values, not only their shape
# ---------------------------------------------------------------------------------------------


def _part1() -> ModuleType:
    """The Part 1 hidden tests, imported without pytest's warning about their ``graded`` mark (the
    hidden suite registers it in its own pytest.ini)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        return importlib.import_module("autograder.hidden_tests.test_part1_convolution")


def _named(hints: list[Hint], got: np.ndarray) -> str | None:
    hint = matching_hint(hints, got, lambda g, wrong: reproduces(g, wrong, 1e-9))
    return None if hint is None else hint.mistake


def test_swapped_output_size_is_not_called_a_transposed_kernel() -> None:
    """A 5x5 image and a 2x3 kernel: (4, 3) expected; swapped sizes give (3, 4), the shape of the
    transposed kernel's answer. Only the swap's values name the swap; other values name nothing."""
    ref = load_reference()
    image = np.arange(25.0).reshape(5, 5) % 7
    kernel = np.array([[1.0, -2.0, 0.0], [3.0, 1.0, -1.0]])
    hints = _part1().conv2d_hints(ref, image, kernel)
    swapped = np.pad(ref.conv2d(image, kernel), ((0, 0), (0, 1)))[:3, :4]  # valid where the window fits
    assert swapped.shape == ref.conv2d(image, kernel.T).shape
    assert _named(hints, swapped) == "output-size-swapped"
    assert _named(hints, ref.conv2d(image, kernel.T)) == "transposed-kernel"
    assert _named(hints, np.ones((3, 4))) is None


def test_square_kernel_is_recognised_by_its_values() -> None:
    ref = load_reference()
    image = np.arange(30.0).reshape(5, 6) % 5
    kernel = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]])
    hints = _part1().conv2d_hints(ref, image, kernel)
    assert _named(hints, ref.conv2d(image, kernel[:, :2])) == "square-kernel"
    assert _named(hints, np.zeros((4, 5))) is None  # the same shape, other values


def test_layer_ceil_and_swap_leave_entries_off_the_edge_undetermined() -> None:
    ref = load_reference()
    rng = np.random.default_rng(3)
    case = LayerCase(rng.standard_normal((1, 2, 7, 5)), rng.standard_normal((3, 2, 2, 2)), None, 2, 0)
    expected = ref.conv2d_layer(case.x, case.weight, stride=2)  # (1, 3, 3, 2)
    hints = _part1().layer_hints(ref, case)
    ceil = np.zeros((1, 3, 4, 3))  # one more row and column; what lies past the edge is anything
    ceil[:, :, :3, :2] = expected
    ceil[:, :, 3:, :] = 123.0
    assert _named(hints, ceil) == "output-size-ceil"
    swapped = np.full((1, 3, 2, 3), -5.0)
    swapped[:, :, :2, :2] = expected[:, :, :2, :2]
    assert _named(hints, swapped) == "output-size-swapped"
    swapped[0, 0, 0, 0] += 1.0
    assert _named(hints, swapped) is None


def test_reproduces_compares_values() -> None:
    got = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert reproduces(got, got + 1e-12, 1e-9)
    assert not reproduces(got, got.T, 1e-9)
    assert not reproduces(got, (2, 2), 1e-9)  # a shape is not an answer
    assert reproduces(got, np.array([[1.0, np.nan], [3.0, np.nan]]), 1e-9)  # NaN: not determined
    assert not reproduces(got, np.full((2, 2), np.nan), 1e-9)  # nothing determined: no evidence
    assert reproduces(np.zeros((2, 0)), np.zeros((2, 0)), 1e-9)  # an empty answer, like the mistake's
