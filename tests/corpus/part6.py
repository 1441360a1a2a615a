"""Mutants of Part 6: conv2d_backward and locally_connected2d_backward."""

from tests.corpus import Mutant

MUTANTS = [
    Mutant(
        "conv-backward-dweight-averaged",
        "conv2d_backward",
        'dweight[:, :, m, q] = np.einsum("noij,ncij->oc", dout, xp[:, :, rows, cols])',
        'dweight[:, :, m, q] = np.einsum("noij,ncij->oc", dout, xp[:, :, rows, cols]) / (H_out * W_out)',
        mistake="grad-averaged",
    ),
    Mutant(
        "conv-backward-dweight-batch-mean",
        "conv2d_backward",
        'dweight[:, :, m, q] = np.einsum("noij,ncij->oc", dout, xp[:, :, rows, cols])',
        'dweight[:, :, m, q] = np.einsum("noij,ncij->oc", dout, xp[:, :, rows, cols]) / N',
        mistake="grad-averaged",
    ),
    Mutant(
        "conv-backward-dbias-averaged",
        "conv2d_backward",
        "dbias = dout.sum(axis=(0, 2, 3))",
        "dbias = dout.mean(axis=(0, 2, 3))",
        mistake="dbias-averaged",
    ),
    Mutant(
        "conv-backward-dx-not-cropped",
        "conv2d_backward",
        "return dxp[:, :, padding : padding + H, padding : padding + W], dweight, dbias",
        "return dxp, dweight, dbias",
        mistake="dx-padding-not-cropped",
    ),
    Mutant(
        "conv-backward-dx-flipped",
        "conv2d_backward",
        'dxp[:, :, rows, cols] += np.einsum("noij,oc->ncij", dout, weight[:, :, m, q])',
        'dxp[:, :, rows, cols] += np.einsum("noij,oc->ncij", dout, weight[:, :, kh - 1 - m, kw - 1 - q])',
        mistake="flipped-kernel",
    ),
    Mutant(
        "conv-backward-dweight-flipped",
        "conv2d_backward",
        'dweight[:, :, m, q] = np.einsum("noij,ncij->oc", dout, xp[:, :, rows, cols])',
        'dweight[:, :, kh - 1 - m, kw - 1 - q] = np.einsum("noij,ncij->oc", dout, xp[:, :, rows, cols])',
        mistake="flipped-kernel",
    ),
    Mutant(
        "conv-backward-dx-overwritten",
        "conv2d_backward",
        'dxp[:, :, rows, cols] += np.einsum("noij,oc->ncij", dout, weight[:, :, m, q])',
        'dxp[:, :, rows, cols] = np.einsum("noij,oc->ncij", dout, weight[:, :, m, q])',
        mistake="dx-overwritten",
    ),
    Mutant(
        "conv-backward-no-dout-check",
        "conv2d_backward",
        "    if dout.shape != (N, C_out, H_out, W_out):\n        raise ValueError",
        "    if dout.ndim != 4:\n        raise ValueError",
        mistake="missing-validation",
    ),
    Mutant(
        "conv-backward-dx-stride-ignored",
        "conv2d_backward",
        '            dxp[:, :, rows, cols] += np.einsum("noij,oc->ncij", dout, weight[:, :, m, q])',
        '            dxp[:, :, m : m + H_out, q : q + W_out] += np.einsum("noij,oc->ncij", dout, weight[:, :, m, q])',
    ),
    Mutant(
        "lc-backward-dweight-summed",
        "locally_connected2d_backward",
        'dweight = np.einsum("noij,ncijmq->ijocmq", dout, windows)',
        'dweight = np.broadcast_to(np.einsum("noij,ncijmq->ocmq", dout, windows), weight.shape).copy()',
        mistake="summed-over-positions",
    ),
    Mutant(
        "lc-backward-dweight-conv-shape",
        "locally_connected2d_backward",
        'dweight = np.einsum("noij,ncijmq->ijocmq", dout, windows)',
        'dweight = np.einsum("noij,ncijmq->ocmq", dout, windows)',
        mistake="summed-over-positions",
    ),
    Mutant(
        "lc-backward-dbias-summed",
        "locally_connected2d_backward",
        "dbias = dout.sum(axis=0).transpose(1, 2, 0)",
        "dbias = dout.sum(axis=(0, 2, 3))",
        mistake="summed-over-positions",
    ),
    Mutant(
        "lc-backward-dbias-layout",
        "locally_connected2d_backward",
        "dbias = dout.sum(axis=0).transpose(1, 2, 0)",
        "dbias = dout.sum(axis=0)",
        mistake="dbias-layout",
    ),
    Mutant(
        "lc-backward-dx-stride-ignored",
        "locally_connected2d_backward",
        "            rows = slice(m, m + stride * (H_out - 1) + 1, stride)\n"
        "            cols = slice(q, q + stride * (W_out - 1) + 1, stride)\n"
        '            dx[:, :, rows, cols] += np.einsum("noij,ijoc->ncij"',
        "            rows = slice(m, m + H_out)\n"
        "            cols = slice(q, q + W_out)\n"
        '            dx[:, :, rows, cols] += np.einsum("noij,ijoc->ncij"',
    ),
    Mutant(
        "lc-backward-no-dout-check",
        "locally_connected2d_backward",
        "    if dout.shape != (x.shape[0], C_out, H_out, W_out):\n        raise ValueError",
        "    if dout.ndim != 4:\n        raise ValueError",
        mistake="missing-validation",
    ),
    Mutant(
        "conv-backward-dx-crop-minus-zero",
        "conv2d_backward",
        "return dxp[:, :, padding : padding + H, padding : padding + W], dweight, dbias",
        "return dxp[:, :, padding:-padding, padding:-padding], dweight, dbias",
        mistake="dx-crop-minus-zero",
    ),
    Mutant(
        # The naive loop of CS231n's conv_backward_naive, with = where it needs +=.
        "conv-backward-dx-window-overwritten",
        "conv2d_backward",
        '            dxp[:, :, rows, cols] += np.einsum("noij,oc->ncij", dout, weight[:, :, m, q])\n'
        "    dbias = dout.sum(axis=(0, 2, 3))\n",
        "    for n in range(N):\n"
        "        for o in range(C_out):\n"
        "            for i in range(H_out):\n"
        "                for j in range(W_out):\n"
        "                    window = (n, slice(None), slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw))\n"
        "                    dxp[window] = weight[o] * dout[n, o, i, j]\n"
        "    dbias = dout.sum(axis=(0, 2, 3))\n",
        mistake="dx-overwritten",
    ),
    Mutant(  # found by benchmarks/mutation_benchmark.py: every test passed stride and padding
        "conv-backward-no-defaults",
        "conv2d_backward",
        "weight: np.ndarray, stride: int = 1, padding: int = 0",
        "weight: np.ndarray, stride: int, padding: int",
    ),
    Mutant(
        "lc-backward-dx-overwritten",
        "locally_connected2d_backward",
        'dx[:, :, rows, cols] += np.einsum("noij,ijoc->ncij"',
        'dx[:, :, rows, cols] = np.einsum("noij,ijoc->ncij"',
        mistake="dx-overwritten",
    ),
]
