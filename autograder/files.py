"""Writing files: atomically, and generated files without clobbering someone's edits.

Every file the grader writes for someone else to read (a results.json, a gradebook export, a zip for
Gradescope, a course folder for nbgrader) goes through here, so that a reader sees the old file or
the new one, never half of one, even after a crash or a power cut.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_output", "write_atomic", "write_generated"]


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(path: Path, *, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A binary stream whose content replaces ``path`` in one step when the block ends.

    The data goes to a temporary file beside ``path``, is flushed to disk, then renamed over it and
    the folder synced. When the block raises, ``path`` is left as it was and the temporary is gone.

    Args:
        path: the destination (its folder is made if needed).
        mode: the file's permission bits.

    Yields:
        The stream to write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_atomic(path: Path, data: str | bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` (text is UTF-8) to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, mode=mode) as stream:
        stream.write(data.encode() if isinstance(data, str) else data)


def write_generated(files: dict[Path, str], *, overwrite: bool) -> list[Path]:
    """Write generated files, refusing to replace any that exists with other content.

    Exports are run again after a change of the source; a file that already has the same content
    is simply written again, but one that differs (an instructor's edit, another course) is only
    replaced with ``overwrite``. Nothing is written when any file clashes.

    Args:
        files: path -> content.
        overwrite: replace files with other content.

    Returns:
        The paths, in the order given.

    Raises:
        FileExistsError: naming the files that exist with other content, when ``overwrite`` is False.
    """
    clashes = [path for path, text in files.items() if path.exists() and path.read_text() != text]
    if clashes and not overwrite:
        raise FileExistsError(
            f"{', '.join(map(str, clashes))} already exist(s) with other content; "
            "export into an empty folder or pass overwrite=True (--force)"
        )
    for path, text in files.items():
        write_atomic(path, text)
    return list(files)
