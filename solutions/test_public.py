"""Public examples for the weight-sharing problem set. Run them with ``pytest test_public.py``.

Every number here was worked out by hand (the comments show how). The grader runs these ideas on
many more inputs; passing this file is a good sign, not a guarantee.
"""

import numpy as np
import pytest
import weight_sharing as ws


def test_1_1_conv2d_no_flip():
    # out[0, 0] = 1*1 + 2*0 + 4*0 + 5*(-1) = -4: the kernel is NOT flipped (cross-correlation).
    image = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    kernel = np.array([[1.0, 0.0], [0.0, -1.0]])
    np.testing.assert_allclose(ws.conv2d(image, kernel), [[-4.0, -4.0], [-4.0, -4.0]])


def test_1_1_conv2d_shape_and_errors():
    assert ws.conv2d(np.ones((5, 7)), np.ones((2, 3))).shape == (4, 5)
    with pytest.raises(ValueError):
        ws.conv2d(np.ones((2, 2)), np.ones((3, 3)))  # the kernel does not fit
    with pytest.raises(ValueError):
        ws.conv2d(np.ones((2, 2, 2)), np.ones((1, 1)))  # not 2-D


def test_1_2_conv2d_layer_stride_padding_bias():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 3, 3))
    # padding 1, stride 2 -> output 2x2; top-left window covers x[0:2, 0:2] = 0 + 1 + 4 + 5 = 10.
    out = ws.conv2d_layer(x, w, np.array([0.5]), stride=2, padding=1)
    np.testing.assert_allclose(out, [[[[10.5, 24.5], [51.5, 90.5]]]])


def test_2_parameter_counts():
    assert ws.conv_output_size(32, 5) == 28
    assert ws.conv_output_size(224, 11, stride=4, padding=2) == 55
    assert ws.dense_params(1024, 64, bias=False) == 65_536
    assert ws.conv2d_params(1, 8, 3, bias=False) == 72
    assert ws.conv2d_params(3, 64, (3, 3)) == 1_792
    assert ws.locally_connected2d_params(224, 1, 1, 3, bias=False) == 443_556  # not "about 148,000"


def test_2_5_network_summary_lenet5():
    lenet5 = [
        {"type": "conv2d", "out_channels": 6, "kernel_size": 5},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "conv2d", "out_channels": 16, "kernel_size": 5},
        {"type": "maxpool2d", "kernel_size": 2},
        {"type": "flatten"},
        {"type": "dense", "out_features": 120},
        {"type": "dense", "out_features": 84},
        {"type": "dense", "out_features": 10},
    ]
    summary = ws.network_summary(lenet5, (1, 32, 32))
    assert [shape for shape, _ in summary][:2] == [(6, 28, 28), (6, 14, 14)]
    assert sum(params for _, params in summary) == 61_706


def test_3_tied_locally_connected_equals_conv():
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(4)
    lc_w, lc_b = ws.conv_as_locally_connected(w, b, 4)
    assert lc_w.shape == (4, 4, 4, 3, 2, 2) and lc_b.shape == (4, 4, 4)
    np.testing.assert_allclose(ws.locally_connected2d(x, lc_w, lc_b), ws.conv2d_layer(x, w, b), atol=1e-12)


def test_4_1_shift2d_direction():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(ws.shift2d(x, 1, 0), [[0.0, 0.0], [1.0, 2.0]])  # down
    np.testing.assert_array_equal(ws.shift2d(x, 0, -1), [[2.0, 0.0], [4.0, 0.0]])  # left
    np.testing.assert_array_equal(ws.shift2d(x, 0, 1, circular=True), [[2.0, 1.0], [4.0, 3.0]])


def test_4_circular_conv_is_equivariant():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    layer = lambda v: ws.circular_conv2d(v, w)  # noqa: E731
    assert ws.equivariance_error(layer, x, 2, -1) < 1e-12
    assert ws.is_shift_equivariant(layer, x, [(1, 0), (0, 1), (2, 3)])
    position_bias = rng.standard_normal((6, 6))
    assert not ws.is_shift_equivariant(lambda v: v + position_bias, x, [(1, 0)])


def test_5_1_conv2d_fast_matches_layer():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    np.testing.assert_allclose(
        ws.conv2d_fast(x, w, b, stride=2, padding=1), ws.conv2d_layer(x, w, b, stride=2, padding=1), atol=1e-10
    )


def test_6_1_conv2d_backward_bias_and_weight():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 2, 2))
    dout = np.ones((1, 1, 2, 2))
    dx, dw, db = ws.conv2d_backward(dout, x, w)
    np.testing.assert_allclose(db, [4.0])  # the bias was used at 4 positions: its gradient is summed
    # dw[0, 0, 0, 0] = x[0,0] + x[0,1] + x[1,0] + x[1,1] = 0 + 1 + 3 + 4 = 8 (a sum over positions)
    np.testing.assert_allclose(dw, [[[[8.0, 12.0], [20.0, 24.0]]]])
    np.testing.assert_allclose(dx, [[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]])


def test_6_2_summed_gradient_identity():
    rng = np.random.default_rng(3)
    x, w, dout = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 2, 2)), rng.standard_normal((2, 3, 4, 4))
    _, dw_conv, _ = ws.conv2d_backward(dout, x, w)
    _, dw_local, db_local = ws.locally_connected2d_backward(dout, x, ws.conv_as_locally_connected(w, None, 4)[0])
    assert db_local.shape == (4, 4, 3)
    np.testing.assert_allclose(dw_local.sum(axis=(0, 1)), dw_conv, atol=1e-10)
