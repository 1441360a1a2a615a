"""Part 5: conv2d_fast (Task 5.1 correctness; 5.2 speed and 5.3 GPU live in test_part5_speed.py).

conv2d_fast has conv2d_layer's contract, so it faces the whole conv2d_layer property suite first
(every check of Task 1.2, the generated cases in every memory layout included), then realistic
layers: no speed points without correct values.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograder.checks import SubmissionProxy, check_accepts, expect_error
from autograder.hidden_tests.strategies import LayerCase, layer_cases, layout_view
from autograder.hidden_tests.test_part1_convolution import (
    check_layer,
    layer_does_not_modify_inputs,
    layer_hand_example,
    layer_in_any_layout,
    layer_realistic_size,
    layer_rejects_bad_hyperparameters,
    layer_rejects_bad_shapes,
)

graded = pytest.mark.graded
FAST = "conv2d_fast"


@graded("5.1", weight=1, public=True)
def test_fast_hand_example(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches a hand-computed example with stride 2, padding 1 and a bias"""
    layer_hand_example(sub, ref, FAST)


@graded("5.1", weight=1)
@given(case=layer_cases(max_stride=1, max_padding=0), data=st.data())
def test_fast_channels_and_bias(sub: SubmissionProxy, ref: ModuleType, case: LayerCase, data: st.DataObject) -> None:
    """matches conv2d_layer's definition with several channels and filters (stride 1, no padding; any memory layout)"""
    layer_in_any_layout(sub, ref, FAST, case, data)


@graded("5.1", weight=2)
@given(case=layer_cases(), data=st.data())
def test_fast_matches_reference(sub: SubmissionProxy, ref: ModuleType, case: LayerCase, data: st.DataObject) -> None:
    """matches conv2d_layer's definition for every stride, padding and bias (float32; C, Fortran, strided, reversed)"""
    layer_in_any_layout(sub, ref, FAST, case, data)


@graded("5.1", weight=1)
def test_fast_realistic_layers(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches on realistic layers (CIFAR's first layer, a 3x3 stage with stride 2, a 7x7 kernel; Fortran too)"""
    layer_realistic_size(sub, ref, FAST)
    rng = np.random.default_rng(51)
    for x_shape, w_shape, stride, padding, layout in [
        ((2, 3, 32, 32), (16, 3, 5, 5), 1, 2, "c"),
        ((2, 8, 15, 16), (8, 8, 3, 3), 2, 1, "c"),
        ((1, 3, 20, 18), (4, 3, 7, 7), 2, 3, "c"),
        ((2, 3, 32, 32), (16, 3, 5, 5), 1, 2, "fortran"),
        ((2, 8, 15, 16), (8, 8, 3, 3), 2, 1, "reversed"),
    ]:
        case = LayerCase(
            rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0]), stride, padding
        )
        check_layer(sub, ref, case, function=FAST, x=layout_view(case.x, layout))


@graded("5.1", weight=1)
def test_fast_large_batches(sub: SubmissionProxy, ref: ModuleType) -> None:
    """matches on batches of 3 to 5 images with 400 weights per filter, with and without a bias"""
    rng = np.random.default_rng(52)
    # Each image's matrix of receptive fields (C_in * kh * kw rows, H_out * W_out columns) holds 145,000 to
    # 550,000 numbers: an implementation that works through the batch a few images at a time, to stay in
    # the cache, must get every piece right, a last shorter one included, with and without the bias.
    for x_shape, w_shape, stride, padding, with_bias in [
        ((5, 16, 26, 26), (2, 16, 5, 5), 1, 0, True),
        ((5, 16, 26, 26), (3, 16, 5, 5), 1, 0, False),
        ((3, 16, 41, 41), (1, 16, 5, 5), 1, 0, False),
        ((5, 16, 40, 40), (2, 16, 5, 5), 2, 1, True),
    ]:
        bias = rng.standard_normal(w_shape[0]) if with_bias else None
        case = LayerCase(rng.standard_normal(x_shape), rng.standard_normal(w_shape), bias, stride, padding)
        check_layer(sub, ref, case, function=FAST)


@graded("5.1", weight=0.5)
def test_fast_rejects_bad_shapes(sub: SubmissionProxy, ref: ModuleType) -> None:
    """raises ValueError like conv2d_layer for wrong dimensions, channel or bias mismatches"""
    layer_rejects_bad_shapes(sub, ref, FAST)


@graded("5.1", weight=0.5)
def test_fast_rejects_bad_hyperparameters(sub: SubmissionProxy, ref: ModuleType) -> None:
    """raises ValueError like conv2d_layer for stride < 1, padding < 0 or a kernel larger than the padded input"""
    layer_rejects_bad_hyperparameters(sub, ref, FAST)
    f = sub.conv2d_fast
    x = np.arange(50.0).reshape(1, 2, 5, 5)
    check_accepts(f, x, np.ones((3, 2, 5, 5)), bias=None, stride=1, padding=0)
    expect_error(f, x, np.ones((3, 2, 6, 6)), because="a 6x6 kernel is larger than the 5x5 input")


@graded("5.1", weight=0.5)
def test_fast_does_not_modify_inputs(sub: SubmissionProxy) -> None:
    """leaves x, weight and bias unchanged"""
    layer_does_not_modify_inputs(sub, FAST)
