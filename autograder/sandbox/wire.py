"""The wire between the grader and the worker: one definition of the format, used by both sides.

It imports only the standard library and numpy, because a copy of it sits beside the worker in
the worker's own root (where the grader's package does not exist).

A message, in both directions: a 4-byte big-endian header length, a UTF-8 JSON header, then
``header["nframes"]`` frames, each an 8-byte big-endian length and the bytes of one ``.npy`` file
(read with ``allow_pickle=False``). Values are encoded with **exact types only**
(:func:`encode`): an ndarray subclass, an object with its own ``__eq__`` or an object array never
crosses as itself, only as an inert ``__unsupported__`` record. That is the security property of
the wire: nothing the worker sends can carry behaviour into the grader.

The grader reads with :func:`read_message` under :class:`WireLimits`, which bound the header, each
frame, the number of frames and the total bytes of one message, and with a deadline; whatever
goes wrong while reading or decoding raises :class:`WireError`, which the grader counts against
the call that produced it.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import select
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Frame",
    "PeerClosed",
    "Unsupported",
    "WireError",
    "WireLimits",
    "WireTimeout",
    "array_to_frame",
    "decode",
    "encode",
    "frame_bytes",
    "read_message",
    "write_message",
]

_HEADER = struct.Struct(">I")
_FRAME = struct.Struct(">Q")
_MAX_DEPTH = 20
_IOV_MAX = 512  # buffers per writev (Linux allows 1024)


@dataclass(frozen=True)
class WireLimits:
    """Bounds on one message read from the other side.

    Attributes:
        header_bytes: the JSON header.
        frame_bytes: one ``.npy`` frame.
        frames: frames in one message.
        total_bytes: the whole message.
    """

    header_bytes: int = 1024 * 1024
    frame_bytes: int = 1024 * 1024 * 1024
    frames: int = 64
    total_bytes: int = 1536 * 1024 * 1024


class WireError(Exception):
    """A message broke the format or its limits (the sender's fault)."""


class WireTimeout(WireError):
    """The deadline passed before the whole message arrived."""


class PeerClosed(WireError):
    """The other side closed its end (it exited or died)."""


class Unsupported:
    """A value that is not plain data (an object, an ndarray subclass, ...); carries a description."""

    __slots__ = ("description",)

    def __init__(self, description: str) -> None:
        self.description = description

    def __repr__(self) -> str:
        return f"<{self.description}>"


# ---------------------------------------------------------------------------------------------
# Values <-> JSON-able structures + .npy frames
# ---------------------------------------------------------------------------------------------


#: One frame as it is sent: the bytes of a ``.npy`` file, whole or in parts (its header, then a
#: view of the array's memory, so that a 25 MB array is not copied to be sent).
Frame = bytes | tuple[bytes, memoryview]
#: The largest ``.npy`` header read (numpy's own default bound).
_NPY_HEADER_MAX = 10_000


def array_to_frame(array: np.ndarray) -> Frame:
    """One array as a ``.npy`` file (C order): its header and a view of its data, not copied.

    A 0-d array stays 0-d (``np.ascontiguousarray`` would make it 1-d).
    """
    array = np.asarray(array, order="C")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    return header.getvalue(), array.reshape(-1).data.cast("B") if array.size else memoryview(b"")


def _frame_parts(frame: Frame) -> tuple[bytes | memoryview, ...]:
    return frame if isinstance(frame, tuple) else (frame,)


def frame_bytes(frame: Frame) -> bytes:
    """A frame as one ``bytes`` object (the ``.npy`` file)."""
    return b"".join(_frame_parts(frame))


@functools.lru_cache(maxsize=512)
def _npy_header(head: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype of a ``.npy`` preamble and header, as numpy reads them.

    Cached by the exact bytes: a grading sends the same few headers hundreds of times, and numpy
    parses each with ``ast.literal_eval`` (a tenth of a millisecond, on both sides of every call).
    """
    stream = io.BytesIO(head)
    version = np.lib.format.read_magic(stream)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(stream)
    if stream.tell() != len(head):
        raise ValueError("a .npy header that does not end where it says")
    return tuple(shape), bool(fortran_order), dtype


def _frame_to_array(frame: bytes | bytearray | tuple[bytes, memoryview]) -> np.ndarray:
    """Read a ``.npy`` frame as ``np.load(allow_pickle=False)`` would, without copying its data.

    The array is a view of ``frame`` when that is a ``bytearray`` (what :func:`read_message`
    returns), so it is writeable as a loaded array is; a read-only ``bytes`` frame is copied.
    """
    if isinstance(frame, tuple):  # a frame made here, not read from a pipe
        frame = frame_bytes(frame)
    view = memoryview(frame)
    if len(view) < 10:
        raise ValueError(f"a frame of {len(view)} bytes")
    # the .npy preamble: magic (6 bytes), version (2), header length (2 bytes in 1.0, else 4)
    start = 10 if view[6] == 1 else 12
    length = int.from_bytes(view[8:start], "little")
    if length > _NPY_HEADER_MAX:
        raise ValueError(f"a .npy header of {length} bytes")
    offset = start + length
    shape, fortran_order, dtype = _npy_header(bytes(view[:offset]))
    if dtype.hasobject:
        raise ValueError("an object array (it would need pickle)")
    count = math.prod(shape)
    if len(frame) - offset != count * dtype.itemsize:
        raise ValueError(f"{len(frame) - offset} data bytes for {count} items of {dtype}")
    array = np.frombuffer(frame, dtype=dtype, count=count, offset=offset)
    array = array.reshape(shape[::-1]).transpose() if fortran_order else array.reshape(shape)
    return array if array.flags.writeable else array.copy()


def _describe(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def encode(value: Any, frames: list[Frame], depth: int = 0, *, device_array: type | None = None) -> Any:
    """Encode a value as JSON-able data, appending arrays to ``frames``.

    Exact types only: an ndarray subclass, a custom object or an object array becomes an
    ``__unsupported__`` record, so a value can never smuggle behaviour (``__eq__``) across.

    Args:
        value: the value.
        frames: the list that receives ``.npy`` frames.
        depth: nesting depth so far.
        device_array: the real ``cupy.ndarray`` class, captured before any student code ran, or
            None where there is no GPU: only an instance of exactly that class is sent as a
            device array.

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
        frames.append(array_to_frame(value))
        return {"__array__": len(frames) - 1}
    if isinstance(value, np.ndarray):
        return {"__unsupported__": f"an ndarray subclass ({_describe(value)})"}
    if device_array is not None and kind is device_array:
        frames.append(array_to_frame(value.get()))
        return {"__array__": len(frames) - 1, "device": "cupy"}
    if kind in (np.bool_,):
        return {"__npscalar__": "bool", "value": bool(value)}
    if isinstance(value, np.integer) and kind.__module__ == "numpy":
        return {"__npscalar__": "int", "value": str(int(value))}
    if isinstance(value, np.floating) and kind.__module__ == "numpy":
        return {"__npscalar__": "float", "value": repr(float(value))}
    if kind is tuple:
        return {"__tuple__": [encode(item, frames, depth + 1, device_array=device_array) for item in value]}
    if kind is list:
        return [encode(item, frames, depth + 1, device_array=device_array) for item in value]
    if kind is dict and all(type(key) is str for key in value):
        return {
            "__dict__": {key: encode(item, frames, depth + 1, device_array=device_array) for key, item in value.items()}
        }
    return {"__unsupported__": f"a {_describe(value)} object"}


def decode(
    data: Any,
    frames: Sequence[Frame | bytearray],
    *,
    on_device: Callable[[np.ndarray], Any] | None = None,
    on_layer: Callable[[Any], Any] | None = None,
    depth: int = 0,
) -> Any:
    """Invert :func:`encode`. Frames are read with ``allow_pickle=False``.

    Args:
        data: the JSON-able encoding.
        frames: the ``.npy`` frames it refers to.
        on_device: converts arrays marked ``"device": "cupy"`` (the worker moves them to the GPU;
            the grader leaves them as NumPy and records the device).
        on_layer: builds a ``__layer__`` record (the worker only; the grader never receives one).
        depth: nesting depth so far.

    Returns:
        The value. ``__unsupported__`` records become :class:`Unsupported`.

    Raises:
        WireError: for anything that is not a valid encoding.
    """
    if depth > _MAX_DEPTH + 2:
        raise WireError("a value nested too deeply")
    if isinstance(data, list):
        return [decode(item, frames, on_device=on_device, on_layer=on_layer, depth=depth + 1) for item in data]
    if not isinstance(data, dict):
        return data
    try:
        if "__array__" in data:
            array = _frame_to_array(frames[data["__array__"]])
            view = data.get("view")
            if view is not None:
                array = array[tuple(slice(*s) for s in view["slices"])].transpose(view["axes"])
            if data.get("device") == "cupy" and on_device is not None:
                return on_device(array)
            return array
        if "__int__" in data:
            text = str(data["__int__"])
            if len(text) > 5000:
                raise WireError("an integer of more than 5000 digits")
            return int(text)
        if "__float__" in data:
            return float(data["__float__"])
        if "__npscalar__" in data:
            return {"bool": bool, "int": int, "float": float}[data["__npscalar__"]](data["value"])
    except WireError:
        raise
    except Exception as problem:  # a bad index, a broken .npy header, an unknown scalar kind, ...
        raise WireError(f"an unreadable value ({type(problem).__name__}: {problem})") from None
    if "__tuple__" in data:
        items = data["__tuple__"]
        if not isinstance(items, list):
            raise WireError("a malformed tuple")
        return tuple(decode(item, frames, on_device=on_device, on_layer=on_layer, depth=depth + 1) for item in items)
    if "__dict__" in data:
        items = data["__dict__"]
        if not isinstance(items, dict):
            raise WireError("a malformed dict")
        return {
            str(key): decode(item, frames, on_device=on_device, on_layer=on_layer, depth=depth + 1)
            for key, item in items.items()
        }
    if "__unsupported__" in data:
        return Unsupported(str(data["__unsupported__"])[:200])
    if "__layer__" in data and on_layer is not None:
        return on_layer(decode(data["__layer__"], frames, depth=depth + 1))
    raise WireError(f"an unknown record {sorted(map(str, data))[:5]!r}")


# ---------------------------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------------------------


def _message_parts(header: dict[str, Any], frames: Sequence[Frame]) -> list[bytes | memoryview]:
    body = json.dumps({**header, "nframes": len(frames)}).encode()
    parts: list[bytes | memoryview] = [_HEADER.pack(len(body)), body]
    for frame in frames:
        pieces = _frame_parts(frame)
        parts += [_FRAME.pack(sum(len(piece) for piece in pieces)), *pieces]
    return parts


@contextlib.contextmanager
def _non_blocking(fd: int, deadline: float | None) -> Iterator[None]:
    """With a deadline, ``fd`` is non-blocking for the block: every read or write takes what it can
    at once, and only an empty or full pipe waits, in :func:`_wait`. A blocking ``fd`` (the student
    kit's) is made so for the time being: a blocking ``writev`` waits until the whole message is
    taken, deadline or not."""
    was_blocking = deadline is not None and os.get_blocking(fd)
    if was_blocking:
        os.set_blocking(fd, False)
    try:
        yield
    finally:
        if was_blocking:
            os.set_blocking(fd, True)


def _wait(fd: int, reading: bool, deadline: float | None, late: str) -> None:
    """Wait in ``select`` until ``fd`` can be read (or written), for ever without a deadline.

    Raises:
        WireTimeout: with ``late``, once the deadline has passed.
    """
    left = None if deadline is None else deadline - time.monotonic()
    if left is not None and left <= 0:
        raise WireTimeout(late)
    ready = select.select([fd], [], [], left)[0] if reading else select.select([], [fd], [], left)[1]
    if not ready:
        raise WireTimeout(late)


def write_message(fd: int, header: dict[str, Any], frames: Sequence[Frame], deadline: float | None = None) -> None:
    """Write one message to ``fd``: blocking, or by a monotonic ``deadline`` (see :func:`_non_blocking`).

    The parts go out with ``writev`` as they are: an array's memory is not copied into the message.

    Raises:
        WireTimeout: the deadline passed.
        PeerClosed: the reader is gone.
    """
    pending = [memoryview(part).cast("B") for part in _message_parts(header, frames) if len(part)]
    with _non_blocking(fd, deadline):
        while pending:
            try:
                written = os.writev(fd, pending[:_IOV_MAX])
            except BrokenPipeError:
                raise PeerClosed("the other side closed the pipe") from None
            except BlockingIOError:  # the pipe is full: wait until the reader makes room
                _wait(fd, False, deadline, "the other side stopped reading")
                continue
            while written:
                if written >= len(pending[0]):
                    written -= len(pending.pop(0))
                else:
                    pending[0], written = pending[0][written:], 0


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytearray:
    """``size`` bytes read straight into one buffer (no chunks joined afterwards)."""
    buffer = bytearray(size)
    view, done = memoryview(buffer), 0
    while done < size:
        try:
            count = os.readv(fd, [view[done:]])
        except BlockingIOError:  # nothing there yet: wait for it
            _wait(fd, True, deadline, "the message did not arrive in time")
            continue
        if not count:
            raise PeerClosed("the other side closed the pipe")
        done += count
    return buffer


def read_message(
    fd: int, deadline: float | None = None, limits: WireLimits | None = None
) -> tuple[dict[str, Any], list[bytearray]]:
    """Read one message: its JSON header (a dict) and its frames.

    Args:
        fd: the pipe to read.
        deadline: ``time.monotonic()`` by which the whole message must have arrived (None: wait).
        limits: bounds on the message (None: no bounds, for the worker reading the grader).

    Returns:
        ``(header, frames)``.

    Raises:
        WireTimeout, PeerClosed, WireError: the message was late, cut or malformed; nothing the
            other side sends raises anything else.
    """
    with _non_blocking(fd, deadline):
        (length,) = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
        if limits is not None and length > limits.header_bytes:
            raise WireError(f"a message header of {length} bytes (the limit is {limits.header_bytes})")
        raw = _read_exactly(fd, length, deadline)
        try:
            header = json.loads(raw)
            nframes = int(header["nframes"]) if isinstance(header, dict) else -1
        except (RecursionError, MemoryError) as problem:
            raise WireError(f"a message header that could not be parsed ({type(problem).__name__})") from None
        except Exception as problem:  # ValueError, KeyError, TypeError, OverflowError, ...
            raise WireError(f"a malformed message header ({type(problem).__name__}: {problem})") from None
        if nframes < 0:
            raise WireError("a message header that is not an object with a frame count")
        if limits is not None and nframes > limits.frames:
            raise WireError(f"a message of {nframes} frames (the limit is {limits.frames})")
        total = _HEADER.size + length
        frames = []
        for _ in range(nframes):
            (size,) = _FRAME.unpack(_read_exactly(fd, _FRAME.size, deadline))
            total += _FRAME.size + size
            if limits is not None and size > limits.frame_bytes:
                raise WireError(f"an array of {size} bytes (the limit is {limits.frame_bytes})")
            if limits is not None and total > limits.total_bytes:
                raise WireError(f"a message of more than {limits.total_bytes} bytes")
            frames.append(_read_exactly(fd, size, deadline))
        return header, frames
