"""Mutants of Part 4: shift2d, circular_conv2d, equivariance_error, is_shift_equivariant."""

from tests.corpus import Mutant

# equivariance_error calls shift2d(..., circular=True), and is_shift_equivariant calls equivariance_error.
_USES_CIRCULAR_SHIFT = ("equivariance_error", "is_shift_equivariant")

MUTANTS = [
    Mutant(
        "shift-roll-wrong-direction",
        "shift2d",
        "return np.roll(x, (dy, dx), axis=(-2, -1))",
        "return np.roll(x, (-dy, -dx), axis=(-2, -1))",
        also_breaks=_USES_CIRCULAR_SHIFT,
        mistake="shift-wrong-direction",
    ),
    Mutant(
        "shift-zero-fill-wrong-direction",
        "shift2d",
        "out[..., rows_dst, cols_dst] = x[..., rows_src, cols_src]",
        "out[..., rows_src, cols_src] = x[..., rows_dst, cols_dst]",
        mistake="shift-wrong-direction",
    ),
    Mutant(
        "shift-axes-swapped",
        "shift2d",
        "return np.roll(x, (dy, dx), axis=(-2, -1))",
        "return np.roll(x, (dy, dx), axis=(-1, -2))",
        also_breaks=_USES_CIRCULAR_SHIFT,
        mistake="shift-axes-swapped",
    ),
    Mutant(
        "shift-circular-ignored",
        "shift2d",
        "    if circular:\n        return np.roll(x, (dy, dx), axis=(-2, -1))\n",
        "",
        also_breaks=_USES_CIRCULAR_SHIFT,
        mistake="shift-circular-ignored",
    ),
    Mutant(
        "shift-large-shift-crashes",
        "shift2d",
        "    if abs(dy) >= H or abs(dx) >= W:\n        return out\n",
        "",
    ),
    Mutant(
        "shift-modulo-size",
        "shift2d",
        "    if abs(dy) >= H or abs(dx) >= W:\n        return out\n",
        "    dy, dx = int(np.fmod(dy, H)), int(np.fmod(dx, W))  # keep the shift inside the image\n",
        mistake="shift-modulo",
    ),
    Mutant(
        "shift-float64-output",
        "shift2d",
        "out = np.zeros_like(x)",
        "out = np.zeros(x.shape)",
        mistake="dtype-changed",
    ),
    Mutant(
        "circular-flipped-kernel",
        "circular_conv2d",
        "rolled = np.roll(x, (kh // 2 - m, kw // 2 - q), axis=(2, 3))",
        "rolled = np.roll(x, (m - kh // 2, q - kw // 2), axis=(2, 3))",
        mistake="flipped-kernel",
    ),
    Mutant(
        "circular-not-centred",
        "circular_conv2d",
        "rolled = np.roll(x, (kh // 2 - m, kw // 2 - q), axis=(2, 3))",
        "rolled = np.roll(x, (-m, -q), axis=(2, 3))",
        mistake="conv-off-centre",
    ),
    Mutant(
        "circular-precedence-off-centre",
        "circular_conv2d",
        "rolled = np.roll(x, (kh // 2 - m, kw // 2 - q), axis=(2, 3))",
        "rolled = np.roll(x, (-(-kh // 2 + m), -(-kw // 2 + q)), axis=(2, 3))",
        mistake="conv-off-centre",
    ),
    Mutant(
        "circular-zero-padding",
        "circular_conv2d",
        "rolled = np.roll(x, (kh // 2 - m, kw // 2 - q), axis=(2, 3))",
        "rolled = shift2d(x, kh // 2 - m, kw // 2 - q)",
        mistake="zero-padding",
    ),
    Mutant(
        "circular-even-kernel-accepted",
        "circular_conv2d",
        "if kh % 2 == 0 or kw % 2 == 0:",
        "if False:",
        mistake="missing-validation",
    ),
    Mutant(
        "circular-missing-bias",
        "circular_conv2d",
        "    if bias is not None:\n        out += bias[None, :, None, None]\n",
        "",
        mistake="missing-bias",
    ),
    Mutant(
        "error-no-abs",
        "equivariance_error",
        "return float(np.max(np.abs(shifted_first - shift2d(y, dy, dx, circular=True))))",
        "return float(np.max(shifted_first - shift2d(y, dy, dx, circular=True)))",
        also_breaks=("is_shift_equivariant",),
        mistake="signed-difference",
    ),
    Mutant(
        "error-mean-not-max",
        "equivariance_error",
        "return float(np.max(np.abs(shifted_first - shift2d(y, dy, dx, circular=True))))",
        "return float(np.mean(np.abs(shifted_first - shift2d(y, dy, dx, circular=True))))",
        also_breaks=("is_shift_equivariant",),
        mistake="mean-not-max",
    ),
    Mutant(
        "error-zero-fill-shift",
        "equivariance_error",
        "    shifted_first = layer(shift2d(x, dy, dx, circular=True))\n"
        "    return float(np.max(np.abs(shifted_first - shift2d(y, dy, dx, circular=True))))",
        "    shifted_first = layer(shift2d(x, dy, dx))\n"
        "    return float(np.max(np.abs(shifted_first - shift2d(y, dy, dx))))",
        also_breaks=("is_shift_equivariant",),
        mistake="non-circular-shift",
    ),
    Mutant(
        "error-no-size-check",
        "equivariance_error",
        "    if y.shape[-2:] != x.shape[-2:]:\n        raise ValueError",
        "    if False:\n        raise ValueError",
        mistake="missing-validation",
    ),
    Mutant(
        "error-rejects-channel-change",
        "equivariance_error",
        "if y.shape[-2:] != x.shape[-2:]:",
        "if y.shape != x.shape:",
        also_breaks=("is_shift_equivariant",),
        mistake="rejects-size-preserving-layer",
    ),
    Mutant(
        "error-numpy-scalar-array",
        "equivariance_error",
        "return float(np.max(np.abs(shifted_first - shift2d(y, dy, dx, circular=True))))",
        "return np.max(np.abs(shifted_first - shift2d(y, dy, dx, circular=True)), keepdims=True)",
        also_breaks=("is_shift_equivariant",),
    ),
    # Found by benchmarks/mutation_benchmark.py: x may be (H, W) or (C, H, W), and the two axes of a shift
    # are told apart only by a layer that varies along one of them.
    Mutant(
        "error-size-check-assumes-4d",
        "equivariance_error",
        "if y.shape[-2:] != x.shape[-2:]:",
        "if y.shape[2:] != x.shape[-2:]:",
        also_breaks=("is_shift_equivariant",),
        mistake="rejects-size-preserving-layer",
    ),
    Mutant(
        "equivariant-size-check-assumes-4d",
        "is_shift_equivariant",
        "if layer(x).shape[-2:] != x.shape[-2:]:",
        "if layer(x).shape[2:] != x.shape[-2:]:",
        mistake="assumes-4d-input",
    ),
    Mutant(
        "equivariant-shift-axes-swapped",
        "is_shift_equivariant",
        "return all(equivariance_error(layer, x, dy, dx) <= atol for dy, dx in shifts)",
        "return all(equivariance_error(layer, x, dx, dy) <= atol for dy, dx in shifts)",
        mistake="shift-axes-swapped",
    ),
    Mutant(
        "equivariant-first-shift-only",
        "is_shift_equivariant",
        "return all(equivariance_error(layer, x, dy, dx) <= atol for dy, dx in shifts)",
        "for dy, dx in shifts:\n        return bool(equivariance_error(layer, x, dy, dx) <= atol)\n    return True",
        mistake="first-shift-only",
    ),
    Mutant(
        "equivariant-any-not-all",
        "is_shift_equivariant",
        "return all(equivariance_error(layer, x, dy, dx) <= atol for dy, dx in shifts)",
        "return any(equivariance_error(layer, x, dy, dx) <= atol for dy, dx in shifts)",
        mistake="any-not-all",
    ),
    Mutant(
        "equivariant-raises-on-size-change",
        "is_shift_equivariant",
        "    if layer(x).shape[-2:] != x.shape[-2:]:\n        return False\n",
        "",
        mistake="raises-on-size-change",
    ),
    Mutant(
        "equivariant-allclose",
        "is_shift_equivariant",
        "return all(equivariance_error(layer, x, dy, dx) <= atol for dy, dx in shifts)",
        "return all(\n"
        "        np.allclose(layer(shift2d(x, dy, dx, circular=True)), shift2d(layer(x), dy, dx, circular=True), atol=atol)\n"
        "        for dy, dx in shifts\n"
        "    )",
        mistake="allclose-rtol",
    ),
    Mutant(
        "equivariant-atol-ignored",
        "is_shift_equivariant",
        "return all(equivariance_error(layer, x, dy, dx) <= atol for dy, dx in shifts)",
        "return all(equivariance_error(layer, x, dy, dx) <= 1e-8 for dy, dx in shifts)",
        mistake="atol-ignored",
    ),
    Mutant(
        "equivariant-strict-inequality",
        "is_shift_equivariant",
        "return all(equivariance_error(layer, x, dy, dx) <= atol for dy, dx in shifts)",
        "return all(equivariance_error(layer, x, dy, dx) < atol for dy, dx in shifts)",
        mistake="strict-inequality",
    ),
    Mutant(
        "shift-up-off-by-one",
        "shift2d",
        "rows_dst, rows_src = slice(max(dy, 0), H + min(dy, 0)), slice(max(-dy, 0), H - max(dy, 0))",
        "rows_dst, rows_src = slice(max(dy, 0) + (dy < 0), H + min(dy, 0) + (dy < 0)), slice(max(-dy, 0), H - max(dy, 0))",
    ),
    Mutant(
        "circular-accepts-one-image",
        "circular_conv2d",
        "    if x.ndim != 4 or weight.ndim != 4:\n        raise ValueError(\n",
        "    if x.ndim == 3:  # one image (C, H, W): treat it as a batch of one\n        x = x[None]\n"
        "    if x.ndim != 4 or weight.ndim != 4:\n        raise ValueError(\n",
        mistake="missing-validation",
    ),
    Mutant(
        "circular-no-channel-check",
        "circular_conv2d",
        "    if weight.shape[1] != x.shape[1]:",
        "    if False:",
        mistake="missing-validation",
    ),
    Mutant(
        "circular-no-bias-check",
        "circular_conv2d",
        "    if bias is not None and bias.shape != (weight.shape[0],):",
        "    if False:",
        mistake="missing-validation",
    ),
    Mutant(
        "circular-bias-broadcasts",
        "circular_conv2d",
        "    if bias is not None and bias.shape != (weight.shape[0],):",
        "    if bias is not None and bias.ndim != 1:",
        mistake="missing-validation",
    ),
]
