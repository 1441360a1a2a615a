"""Mutants of Part 1: conv2d and conv2d_layer (and the shared argument checks)."""

from tests.corpus import Mutant

MUTANTS = [
    Mutant(
        "conv2d-flipped-kernel",
        "conv2d",
        "out += kernel[m, n] * image[m : m + H_out, n : n + W_out]",
        "out += kernel[kh - 1 - m, kw - 1 - n] * image[m : m + H_out, n : n + W_out]",
        mistake="flipped-kernel",
    ),
    Mutant(
        "conv2d-transposed-kernel",
        "conv2d",
        "out += kernel[m, n] * image[m : m + H_out, n : n + W_out]",
        "out += kernel[n, m] * image[m : m + H_out, n : n + W_out] if kh == kw else kernel[m, n] * image[m : m + H_out, n : n + W_out]",
        mistake="transposed-kernel",
    ),
    Mutant(
        "conv2d-output-one-too-small",
        "conv2d",
        "H_out, W_out = H - kh + 1, W - kw + 1",
        "H_out, W_out = max(H - kh, 1), max(W - kw, 1)",
    ),
    Mutant(
        "conv2d-no-validation",
        "conv2d",
        '    if kh > H or kw > W:\n        raise ValueError(f"kernel of shape',
        '    if False:\n        raise ValueError(f"kernel of shape',
        mistake="missing-validation",
    ),
    Mutant(
        "conv2d-modifies-image",
        "conv2d",
        "    H_out, W_out = H - kh + 1, W - kw + 1\n",
        "    H_out, W_out = H - kh + 1, W - kw + 1\n    image *= 1.0000001\n",
        mistake="mutates-input",
    ),
    Mutant(
        "layer-missing-bias",
        "conv2d_layer",
        "    if bias is not None:\n        out += bias[None, :, None, None]\n",
        "",
        mistake="missing-bias",
    ),
    Mutant(
        "layer-flipped-kernel",
        "conv2d_layer",
        'out += np.einsum("ncij,oc->noij", window, weight[:, :, m, q])',
        'out += np.einsum("ncij,oc->noij", window, weight[:, :, kh - 1 - m, kw - 1 - q])',
        mistake="flipped-kernel",
    ),
    Mutant(
        "layer-padding-one-side",
        "conv2d_layer",
        "    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))\n    out = np.zeros((N, C_out, H_out, W_out), dtype=np.result_type(x, weight))",
        "    xp = np.pad(x, ((0, 0), (0, 0), (padding, 2 * padding), (padding, 2 * padding)))[:, :, padding:, padding:]\n    out = np.zeros((N, C_out, H_out, W_out), dtype=np.result_type(x, weight))",
        mistake="padding-one-side",
    ),
    Mutant(
        "layer-stride-rows-only",
        "conv2d_layer",
        "window = xp[:, :, m : m + stride * (H_out - 1) + 1 : stride, q : q + stride * (W_out - 1) + 1 : stride]",
        "window = xp[:, :, m : m + stride * (H_out - 1) + 1 : stride, q : q + W_out]",
    ),
    Mutant(
        "layer-int-output-dtype",
        "conv2d_layer",
        "    out = np.zeros((N, C_out, H_out, W_out), dtype=np.result_type(x, weight))\n    for m in range(kh):\n        for q in range(kw):\n            # x_pad",
        "    out = np.zeros((N, C_out, H_out, W_out), dtype=np.float16)\n    for m in range(kh):\n        for q in range(kw):\n            # x_pad",
    ),
    Mutant(
        "conv2d-swaps-larger-kernel",
        "conv2d",
        '    if kh > H or kw > W:\n        raise ValueError(f"kernel of shape',
        "    if kh > H and kw > W:  # as scipy.signal.correlate2d: the larger operand slides over the smaller\n"
        "        return conv2d(kernel, image)[::-1, ::-1]\n"
        '    if kh > H or kw > W:\n        raise ValueError(f"kernel of shape',
        mistake="missing-validation",
    ),
    Mutant(
        "conv2d-output-size-swapped",
        "conv2d",
        "    H_out, W_out = H - kh + 1, W - kw + 1\n",
        "    W_out, H_out = H - kh + 1, W - kw + 1\n"
        "    image = np.pad(image, ((0, H), (0, W)))  # room for the windows that run off the image\n",
        mistake="output-size-swapped",
    ),
    Mutant(
        "conv2d-square-kernel",
        "conv2d",
        "    kh, kw = kernel.shape\n",
        "    kh = kw = kernel.shape[0]\n",
        mistake="square-kernel",
    ),
    # Found by benchmarks/mutation_benchmark.py: numpy broadcasts one input channel or one bias, and
    # a kernel one row too tall gives an empty output, so only the explicit checks refuse these.
    Mutant(
        "layer-kernel-must-overflow-both-axes",
        "conv2d_layer",
        "    if kh > H + 2 * padding or kw > W + 2 * padding:",
        "    if kh > H + 2 * padding and kw > W + 2 * padding:",
        within="_check_conv_args",
        also_breaks=("conv2d_fast", "conv2d_backward"),
        mistake="missing-validation",
    ),
    Mutant(
        "layer-no-bias-shape-check",
        "conv2d_layer",
        "    if bias is not None and bias.shape != (C_out,):",
        "    if False:",
        within="_check_conv_args",
        also_breaks=("conv2d_fast", "conv2d_backward"),
        mistake="missing-validation",
    ),
    Mutant(
        "layer-no-channel-check",
        "conv2d_layer",
        "    if C_w != C_in:",
        "    if False:",
        within="_check_conv_args",
        also_breaks=("conv2d_fast", "conv2d_backward"),
        mistake="missing-validation",
    ),
]
