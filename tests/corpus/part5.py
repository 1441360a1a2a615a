"""Mutants of Part 5: conv2d_fast's correctness (its speed is tested in tests/test_speed.py)."""

from tests.corpus import Mutant

MUTANTS = [
    Mutant(
        "fast-bias-dropped",
        "conv2d_fast",
        "            xp.add(products, b4d, out=out[start : start + n])",
        "            out[start : start + n] = products",
        mistake="missing-bias",
    ),
    Mutant(
        "fast-stride-ignored-in-columns",
        "conv2d_fast",
        "                rows = slice(m, m + stride * (H_out - 1) + 1, stride)",
        "                rows = slice(m, m + H_out)",
    ),
    Mutant(
        "fast-padding-one-side",
        "conv2d_fast",
        "        x = xp.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))",
        "        x = xp.pad(x, ((0, 0), (0, 0), (padding, 2 * padding), (padding, 2 * padding)))[:, :, padding:, padding:]",
        mistake="padding-one-side",
    ),
]
