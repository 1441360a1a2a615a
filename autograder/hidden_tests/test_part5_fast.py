"""Part 5: conv2d_fast (Task 5.1 correctness; 5.2 speed and 5.3 GPU live in test_part5_speed.py).

conv2d_fast has conv2d_layer's contract, so it faces the same property suite first: no speed points
without correct values.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks import SubmissionProxy, check_no_mutation, expect_error
from autograder.hidden_tests.strategies import LayerCase, layer_cases, maybe_views
from autograder.hidden_tests.test_part1_convolution import check_layer

graded = pytest.mark.graded


@graded("5.1", weight=1, public=True)
def test_fast_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches a hand-computed example with stride 2, padding 1 and a bias"""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    check_layer(sub, ref, LayerCase(x, np.ones((1, 1, 3, 3)), np.array([0.5]), 2, 1), function="conv2d_fast")


@graded("5.1", weight=2)
@given(case=layer_cases(), data=st.data())
def test_fast_matches_reference(sub: SubmissionProxy, ref: ModuleType, case: LayerCase, data: st.DataObject) -> None:
    """matches conv2d_layer's definition for every stride, padding and bias (float32 and views included)"""
    check_layer(sub, ref, case, function="conv2d_fast", x=data.draw(maybe_views(case.x)))


@graded("5.1", weight=1)
def test_fast_realistic_layers(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches on realistic layers (CIFAR's first layer, a 3x3 stage with stride 2, a 7x7 kernel)"""
    rng = np.random.default_rng(51)
    for x_shape, w_shape, stride, padding in [
        ((2, 3, 32, 32), (16, 3, 5, 5), 1, 2),
        ((2, 8, 15, 16), (8, 8, 3, 3), 2, 1),
        ((1, 3, 20, 18), (4, 3, 7, 7), 2, 3),
    ]:
        case = LayerCase(
            rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0]), stride, padding
        )
        check_layer(sub, ref, case, function="conv2d_fast")


@graded("5.1", weight=1)
def test_fast_rejects_bad_input(sub: SubmissionProxy) -> None:
    """raises ValueError like conv2d_layer (shapes, channels, bias, stride, padding)"""
    x, w = np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3))
    expect_error(sub.conv2d_fast, np.ones((2, 5, 5)), w, because="x is 3-D; it must be (N, C_in, H, W)")
    expect_error(sub.conv2d_fast, x, np.ones((3, 4, 3, 3)), because="weight expects 4 input channels but x has 2")
    expect_error(sub.conv2d_fast, x, w, bias=np.ones(2), because="bias has 2 entries but there are 3 filters")
    expect_error(sub.conv2d_fast, x, w, stride=0, because="stride must be at least 1")
    expect_error(sub.conv2d_fast, x, w, padding=-1, because="padding cannot be negative")
    expect_error(sub.conv2d_fast, x, np.ones((3, 2, 6, 6)), because="a 6x6 kernel is larger than the 5x5 input")


@graded("5.1", weight=1)
def test_fast_does_not_modify_inputs(sub: SubmissionProxy) -> None:
    """leaves x, weight and bias unchanged"""
    rng = np.random.default_rng(52)
    outcome = sub.conv2d_fast(
        rng.standard_normal((2, 3, 8, 8)),
        rng.standard_normal((4, 3, 3, 3)),
        bias=rng.standard_normal(4),
        stride=2,
        padding=1,
    )
    check_no_mutation(outcome)
