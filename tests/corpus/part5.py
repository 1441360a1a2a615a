"""Mutants of Part 5: conv2d_fast's correctness (its speed is tested in tests/test_speed.py)."""

from tests.corpus import Mutant, function_lines, reference_source


def _chunked_im2col() -> str:
    """The reference conv2d_fast's im2col and product, from its comment to its return (replaced whole)."""
    source = reference_source()
    start, end = function_lines(source, "conv2d_fast")
    body = "".join(source.splitlines(keepends=True)[start:end])
    first = body.index("    # The matrix of receptive fields")
    last = body.index("    return out\n") + len("    return out\n")
    return body[first:last]


_CHUNKED_IM2COL = _chunked_im2col()

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
    Mutant(  # found by benchmarks/mutation_benchmark.py: no test's batch filled more than one chunk
        "fast-last-chunk-assumed-full",
        "conv2d_fast",
        "        n = min(chunk, N - start)\n",
        "        n = chunk\n",
    ),
    Mutant(
        # CS231n's published conv_forward_strides: its strides assume a C-ordered input.
        "fast-stride-trick-assumes-c-order",
        "conv2d_fast",
        _CHUNKED_IM2COL,
        "    H, W = x.shape[2:]\n"
        "    strides = x.itemsize * np.array((H * W, W, 1, C_in * H * W, stride * W, stride))\n"
        "    x_stride = np.lib.stride_tricks.as_strided(x, shape=(C_in, kh, kw, N, H_out, W_out), strides=strides)\n"
        "    x_cols = np.ascontiguousarray(x_stride).reshape(K, N * H_out * W_out)\n"
        "    res = w2d @ x_cols\n"
        "    if b4d is not None:\n"
        "        res += bias.reshape(-1, 1)\n"
        "    return res.reshape(C_out, N, H_out, W_out).transpose(1, 0, 2, 3)\n",
    ),
]
