"""Mutants of Part 3: locally_connected2d and conv_as_locally_connected (see tests/corpus/__init__.py)."""

from tests.corpus import Mutant

# _lc_windows also validates and slices for locally_connected2d_backward (Task 6.2).
_USES_WINDOWS = ("locally_connected2d_backward",)

MUTANTS = [
    Mutant(
        "lc-missing-bias",
        "locally_connected2d",
        "    if bias is not None:\n        out = out + bias.transpose(2, 0, 1)[None]\n",
        "",
        mistake="missing-bias",
    ),
    Mutant(
        "lc-bias-reshaped",
        "locally_connected2d",
        "out = out + bias.transpose(2, 0, 1)[None]",
        "out = out + bias.reshape(bias.shape[2], bias.shape[0], bias.shape[1])[None]",
        mistake="lc-bias-layout",
    ),
    Mutant(
        "lc-bias-first-position-only",
        "locally_connected2d",
        "out = out + bias.transpose(2, 0, 1)[None]",
        "out = out + bias[0, 0][None, :, None, None]",
        mistake="lc-bias-per-channel",
    ),
    Mutant(
        "lc-positions-transposed",
        "locally_connected2d",
        'out = np.einsum("ncijmq,ijocmq->noij", windows, weight)',
        'out = np.einsum("ncijmq,jiocmq->noij", windows, weight)',
        mistake="lc-positions-transposed",
    ),
    Mutant(
        "lc-channels-swapped",
        "locally_connected2d",
        'out = np.einsum("ncijmq,ijocmq->noij", windows, weight)',
        'out = np.einsum("ncijmq,ijcomq->noij", windows, weight)',
        mistake="lc-channel-order",
    ),
    Mutant(
        "lc-flipped-kernel",
        "locally_connected2d",
        'out = np.einsum("ncijmq,ijocmq->noij", windows, weight)',
        'out = np.einsum("ncijmq,ijocmq->noij", windows, weight[..., ::-1, ::-1])',
        mistake="flipped-kernel",
    ),
    Mutant(
        "lc-stride-ignored",
        "locally_connected2d",
        "    return windows[:, :, ::stride, ::stride]",
        "    return windows[:, :, : weight.shape[0], : weight.shape[1]]",
        within="_lc_windows",
        also_breaks=_USES_WINDOWS,
        mistake="stride-ignored",
    ),
    Mutant(
        "lc-no-bias-check",
        "locally_connected2d",
        "    if bias is not None and bias.shape != (H_out, W_out, C_out):",
        "    if False:",
        within="_lc_windows",
        mistake="missing-validation",
    ),
    Mutant(  # found by benchmarks/mutation_benchmark.py: einsum broadcasts a weight with one row of positions
        "lc-no-positions-check",
        "locally_connected2d",
        "    if (H_out, W_out) != expected:",
        "    if False:",
        within="_lc_windows",
        also_breaks=_USES_WINDOWS,
        mistake="missing-validation",
    ),
    Mutant(
        "tie-bias-none-gives-zeros",
        "conv_as_locally_connected",
        "lc_bias = None if bias is None else",
        "lc_bias = np.zeros((H_out, W_out, weight.shape[0])) if bias is None else",
        mistake="bias-none",
    ),
    Mutant(
        "tie-positions-last",
        "conv_as_locally_connected",
        "lc_weight = np.broadcast_to(weight, (H_out, W_out) + weight.shape).copy()",
        "lc_weight = np.broadcast_to(weight[..., None, None], weight.shape + (H_out, W_out)).copy()",
        mistake="lc-weight-layout",
    ),
    Mutant(
        "tie-bias-channels-first",
        "conv_as_locally_connected",
        "np.broadcast_to(bias, (H_out, W_out) + bias.shape).copy()",
        "np.broadcast_to(bias[:, None, None], bias.shape + (H_out, W_out)).copy()",
        mistake="lc-bias-layout",
    ),
    Mutant(
        "tie-output-size-swapped",
        "conv_as_locally_connected",
        "H_out, W_out = _pair(output_size)",
        "W_out, H_out = _pair(output_size)",
        mistake="output-size-pair-swapped",
    ),
]
