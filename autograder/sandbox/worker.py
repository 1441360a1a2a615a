"""The worker: the only process that runs student code.

The grader starts it with ``python -I worker.py CONFIG`` from a copy in a scratch folder. It
imports nothing but the standard library and numpy (so it runs where the grader's package, the
reference and the hidden tests are out of reach), loads the submission, then answers call requests
on a pipe until the pipe closes. Everything it sends back is plain data (JSON and ``.npy`` frames);
the grader treats all of it as untrusted.

The grader also imports this module (never running :func:`main`) for the framing functions and the
layer builders, so both sides share one definition of the wire format.

Wire format, both directions: a 4-byte big-endian header length, a UTF-8 JSON header, then
``header["nframes"]`` frames, each an 8-byte big-endian length and the bytes of one ``.npy`` file.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_HEADER_BYTES",
    "Unsupported",
    "build_layer",
    "decode",
    "encode",
    "pack_message",
]

_HEADER = struct.Struct(">I")
_FRAME = struct.Struct(">Q")
MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_FRAME_BYTES = 1024 * 1024 * 1024
_MAX_DEPTH = 20


class Unsupported:
    """A value that is not plain data (an object, an ndarray subclass, ...); carries a description."""

    __slots__ = ("description",)

    def __init__(self, description: str) -> None:
        self.description = description

    def __repr__(self) -> str:
        return f"<{self.description}>"


# ---------------------------------------------------------------------------------------------
# Encoding: Python value <-> JSON-able structure + list of .npy frames
# ---------------------------------------------------------------------------------------------


def _array_to_frame(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _frame_to_array(frame: bytes) -> np.ndarray:
    return np.lib.format.read_array(io.BytesIO(frame), allow_pickle=False)


def _describe(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def encode(value: Any, frames: list[bytes], depth: int = 0) -> Any:
    """Encode a value as JSON-able data, appending arrays to ``frames``.

    Exact types only: an ndarray subclass, a custom object or an object array becomes an
    ``__unsupported__`` record, so a value can never smuggle behaviour (``__eq__``) across.

    Args:
        value: the value.
        frames: the list that receives ``.npy`` frames.
        depth: nesting depth so far.

    Returns:
        The JSON-able encoding.
    """
    if depth > _MAX_DEPTH:
        return {"__unsupported__": "a value nested more than 20 levels deep"}
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return value
    if kind is int:
        return {"__int__": str(value)}
    if kind is float:
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if kind is np.ndarray:
        if value.dtype.hasobject or value.dtype.kind not in "biufc":
            return {"__unsupported__": f"an array of dtype {value.dtype}"}
        frames.append(_array_to_frame(value))
        return {"__array__": len(frames) - 1}
    if isinstance(value, np.ndarray):
        return {"__unsupported__": f"an ndarray subclass ({_describe(value)})"}
    if kind.__module__.split(".")[0] == "cupy" and kind.__name__ == "ndarray":
        frames.append(_array_to_frame(value.get()))
        return {"__array__": len(frames) - 1, "device": "cupy"}
    if kind in (np.bool_,):
        return {"__npscalar__": "bool", "value": bool(value)}
    if isinstance(value, np.integer) and kind.__module__ == "numpy":
        return {"__npscalar__": "int", "value": str(int(value))}
    if isinstance(value, np.floating) and kind.__module__ == "numpy":
        return {"__npscalar__": "float", "value": repr(float(value))}
    if kind is tuple:
        return {"__tuple__": [encode(item, frames, depth + 1) for item in value]}
    if kind is list:
        return [encode(item, frames, depth + 1) for item in value]
    if kind is dict and all(type(key) is str for key in value):
        return {"__dict__": {key: encode(item, frames, depth + 1) for key, item in value.items()}}
    return {"__unsupported__": f"a {_describe(value)} object"}


def decode(data: Any, frames: list[bytes], *, on_device: Callable[[np.ndarray], Any] | None = None) -> Any:
    """Invert :func:`encode`. Frames are read with ``allow_pickle=False``.

    Args:
        data: the JSON-able encoding.
        frames: the ``.npy`` frames it refers to.
        on_device: converts arrays marked ``"device": "cupy"`` (the worker moves them to the GPU;
            the grader leaves them as NumPy and records the device).

    Returns:
        The value. ``__unsupported__`` records become :class:`Unsupported`.
    """
    if isinstance(data, list):
        return [decode(item, frames, on_device=on_device) for item in data]
    if not isinstance(data, dict):
        return data
    if "__array__" in data:
        array = _frame_to_array(frames[data["__array__"]])
        view = data.get("view")
        if view is not None:
            array = array[tuple(slice(*s) for s in view["slices"])].transpose(view["axes"])
        if data.get("device") == "cupy" and on_device is not None:
            return on_device(array)
        return array
    if "__int__" in data:
        return int(data["__int__"])
    if "__float__" in data:
        return float(data["__float__"])
    if "__npscalar__" in data:
        return {"bool": bool, "int": int, "float": float}[data["__npscalar__"]](data["value"])
    if "__tuple__" in data:
        return tuple(decode(item, frames, on_device=on_device) for item in data["__tuple__"])
    if "__dict__" in data:
        return {key: decode(item, frames, on_device=on_device) for key, item in data["__dict__"].items()}
    if "__unsupported__" in data:
        return Unsupported(str(data["__unsupported__"]))
    if "__layer__" in data:
        return build_layer(decode(data["__layer__"], frames))
    raise ValueError(f"unknown record {sorted(data)!r}")


def pack_message(header: dict[str, Any], frames: list[bytes]) -> bytes:
    """Serialise a header and its frames into one message.

    Args:
        header: JSON-able header (``nframes`` is filled in).
        frames: ``.npy`` frames.

    Returns:
        The bytes to write.
    """
    body = json.dumps({**header, "nframes": len(frames)}).encode()
    parts = [_HEADER.pack(len(body)), body]
    for frame in frames:
        parts += [_FRAME.pack(len(frame)), frame]
    return b"".join(parts)


# ---------------------------------------------------------------------------------------------
# Layers for the shift tests, built from a plain description (the same code runs in the grader)
# ---------------------------------------------------------------------------------------------


def _circular_conv_fft(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """'Same'-size circular cross-correlation by FFT (an implementation independent of the reference)."""
    H, W = x.shape[-2:]
    C_out, C_in, kh, kw = weight.shape
    kernel = np.zeros((C_out, C_in, H, W))
    for m in range(kh):
        for q in range(kw):
            # out[i] = sum_m w[m] x[i + m - kh//2]  <=>  correlation with the kernel placed at -(m - kh//2)
            kernel[:, :, (kh // 2 - m) % H, (kw // 2 - q) % W] += weight[:, :, m, q]
    spectrum = np.einsum("nchw,ochw->nohw", np.fft.fft2(x), np.fft.fft2(kernel))
    out = np.real(np.fft.ifft2(spectrum))
    return out if bias is None else out + bias[None, :, None, None]


def build_layer(spec: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Build a layer ``(N, C, H, W) -> array`` from a description (see the kinds below).

    Kinds: ``circular_conv`` (weight, bias), ``relu``, ``square``, ``scale`` (factor),
    ``position_bias`` (bias of shape (H, W)), ``untied_1x1`` (weight (H, W, C_out, C_in)),
    ``subsample_upsample`` (stride), ``crop`` (by), ``zero_pad_conv`` (weight), ``global_avg_pool``
    (output ``(N, C, 1, 1)``), ``compose`` (layers).

    Args:
        spec: the description, with arrays as NumPy arrays.

    Returns:
        A function of one array.
    """
    kind = spec["kind"]
    if kind == "circular_conv":
        weight, bias = spec["weight"], spec.get("bias")
        return lambda x: _circular_conv_fft(x, weight, bias)
    if kind == "relu":
        return lambda x: np.maximum(x, 0.0)
    if kind == "square":
        return lambda x: x * x
    if kind == "scale":
        factor = spec["factor"]
        return lambda x: factor * x
    if kind == "position_bias":
        bias = spec["bias"]
        return lambda x: x + bias
    if kind == "untied_1x1":
        weight = spec["weight"]
        return lambda x: np.einsum("ijoc,ncij->noij", weight, x)
    if kind == "subsample_upsample":
        s = spec["stride"]
        return lambda x: np.repeat(np.repeat(x[..., ::s, ::s], s, axis=-2), s, axis=-1)[
            ..., : x.shape[-2], : x.shape[-1]
        ]
    if kind == "crop":
        k = spec["by"]
        return lambda x: x[..., k:, k:]
    if kind == "global_avg_pool":
        return lambda x: x.mean(axis=(-2, -1), keepdims=True)
    if kind == "zero_pad_conv":
        weight = spec["weight"]

        def zero_pad_conv(x: np.ndarray) -> np.ndarray:
            kh, kw = weight.shape[2:]
            padded = np.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
            H, W = x.shape[-2:]
            out = np.zeros((x.shape[0], weight.shape[0], H, W))
            for m in range(kh):
                for q in range(kw):
                    out += np.einsum("ncij,oc->noij", padded[:, :, m : m + H, q : q + W], weight[:, :, m, q])
            return out

        return zero_pad_conv
    if kind == "compose":
        layers = [build_layer(part) for part in spec["layers"]]

        def composed(x: np.ndarray) -> np.ndarray:
            for layer in layers:
                x = layer(x)
            return x

        return composed
    raise ValueError(f"unknown layer kind {kind!r}")


# ---------------------------------------------------------------------------------------------
# The worker process
# ---------------------------------------------------------------------------------------------


class _BoundedText(io.TextIOBase):
    """A text stream that keeps the first ``limit`` characters written and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        text = str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def take(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[... {self.dropped} more characters of output cut]"
        self.parts, self.kept, self.dropped = [], 0, 0
        return text


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_message(fd: int) -> tuple[dict[str, Any], list[bytes]]:
    (length,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size))
    header = json.loads(_read_exactly(fd, length))
    frames = []
    for _ in range(header["nframes"]):
        (size,) = _FRAME.unpack(_read_exactly(fd, _FRAME.size))
        frames.append(_read_exactly(fd, size))
    return header, frames


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _exception_record(exc: BaseException, filename_prefix: str) -> dict[str, Any]:
    """Describe an exception raised by student code, keeping only the frames of student files."""
    try:
        message = str(exc)
    except Exception:  # a hostile __str__
        message = "<the exception's message could not be shown>"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(filename_prefix)]
    lines = traceback.format_list(frames[-5:])
    return {
        "type": type(exc).__name__,
        "mro": [cls.__name__ for cls in type(exc).__mro__],
        "message": message[:4000],
        "traceback": "".join(lines)[-4000:],
    }


def _set_limits(limits: dict[str, int]) -> None:
    import resource

    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def _load_submission(spec: dict[str, Any], module: Any) -> list[dict[str, Any]]:
    """Run the submission's code in ``module``; returns per-cell errors (cells mode only)."""
    errors = []
    for number, code in enumerate(spec["cells"]):
        filename = spec["filename"] if spec["kind"] == "module" else f"{spec['filename']} [cell {number + 1}]"
        try:
            exec(compile(code, filename, "exec"), module.__dict__)
        except BaseException as exc:
            if spec["kind"] == "module":
                raise
            errors.append({"cell": number + 1, **_exception_record(exc, spec["filename"])})
    return errors


def _count_lines(function: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], prefix: str) -> tuple[Any, int]:
    """Call ``function``, counting the lines executed in the submission's own files.

    A deterministic measure of Python-level work: a vectorised convolution runs the same lines
    whatever the image size, a loop over pixels runs more lines for a larger image.
    """
    count = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def calls(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename.startswith(prefix) else None

    sys.settrace(calls)
    try:
        result = function(*args, **kwargs)
    finally:
        sys.settrace(None)
    return result, count


def main() -> None:  # pragma: no cover - runs in the worker process
    """Serve call requests until the request pipe closes."""
    with open(sys.argv[1]) as handle:
        config = json.load(handle)
    _set_limits(config["rlimits"])
    req_fd, resp_fd = config["req_fd"], config["resp_fd"]
    for fd in (req_fd, resp_fd):
        os.set_inheritable(fd, False)
    capture = _BoundedText(config["output_limit"])
    sys.stdout = sys.stderr = capture  # student output, bounded; fd 1 and 2 go to /dev/null or a log
    sys.stdin = io.StringIO()
    sys.setrecursionlimit(config.get("recursion_limit", 3000))

    import types

    module = types.ModuleType("weight_sharing")
    module.__file__ = os.path.abspath(config["submission"]["filename"])
    sys.modules["weight_sharing"] = module
    prefix = config["submission"]["filename"]
    # Alive, limits set, numpy imported, nothing of the student's run yet: if the grader never
    # receives this, the environment is broken, which is not the student's fault.
    _write_all(resp_fd, pack_message({"alive": True}, []))
    try:
        cell_errors = _load_submission(config["submission"], module)
    except BaseException as exc:
        _write_all(
            resp_fd, pack_message({"ok": False, "error": _exception_record(exc, prefix), "output": capture.take()}, [])
        )
        return
    names = sorted(name for name in config["functions"] if callable(getattr(module, name, None)))
    _write_all(
        resp_fd,
        pack_message({"ok": True, "functions": names, "cell_errors": cell_errors, "output": capture.take()}, []),
    )

    on_device = None
    while True:
        try:
            request, frames = _read_message(req_fd)
        except EOFError:
            return
        if request.get("device") == "cupy" and on_device is None:
            import cupy

            on_device = cupy.asarray
        args = decode(request["args"], frames, on_device=on_device)
        kwargs = decode(request["kwargs"], frames, on_device=on_device)
        argnames = request["argnames"]
        named = dict(zip(argnames, args, strict=False)) | kwargs
        snapshots = {k: v.copy() for k, v in named.items() if type(v) is np.ndarray}
        function = getattr(module, request["function"], None)
        reply: dict[str, Any]
        out_frames: list[bytes] = []
        if not callable(function):
            reply = {"ok": False, "missing": True}
        else:
            try:
                if request.get("count_lines"):
                    result, reply_lines = _count_lines(function, args, kwargs, prefix)
                else:
                    result, reply_lines = function(*args, **kwargs), None
                if request.get("device") == "cupy":
                    cupy = sys.modules["cupy"]
                    cupy.cuda.get_current_stream().synchronize()
                reply = {"ok": True, "result": encode(result, out_frames), "lines": reply_lines}
            except BaseException as exc:  # SystemExit and KeyboardInterrupt included: report, keep serving
                reply = {"ok": False, "error": _exception_record(exc, prefix)}
        reply["mutated"] = [k for k, v in snapshots.items() if not np.array_equal(v, named[k], equal_nan=True)]
        reply["output"] = capture.take()
        _write_all(resp_fd, pack_message(reply, out_frames))


if __name__ == "__main__":
    main()
