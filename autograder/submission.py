"""Finding and reading a submission: the first stage of grading, and one of only two that touch files.

Accepted: ``weight_sharing.py``, ``weight_sharing.ipynb``, a folder holding one of them, or a
``.zip`` of such a folder. Nothing here runs student code: a notebook's code cells are extracted
as text (shell ``!`` and ``%`` magic lines removed) and a zip is unpacked with checks against
``..`` paths, links and zip bombs. Anything else raises :class:`SubmissionError` with a message
that says what was wrong and what to hand in instead.
"""

from __future__ import annotations

import ast
import errno
import hashlib
import json
import os
import re
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

__all__ = [
    "EXAMPLE_TAG",
    "MAX_SOURCE_BYTES",
    "PreparedSubmission",
    "SubmissionError",
    "cells_digest",
    "code_cells",
    "load_submission",
    "notebook_code_cells",
]

MAX_SOURCE_BYTES = 2 * 1024 * 1024
MAX_ZIP_ENTRIES = 200
MAX_ZIP_BYTES = 50 * 1024 * 1024
_EXPECTED = (
    "hand in weight_sharing.py or weight_sharing.ipynb, a folder holding one of them, or a .zip of such a folder"
)
_MAGIC = re.compile(r"^\s*[!%]")


class SubmissionError(ValueError):
    """The path is not a gradable submission; the message says why and what to do."""


@dataclass(frozen=True)
class PreparedSubmission:
    """The student's code, ready for the worker.

    Attributes:
        kind: ``"module"`` (one file, run as a module) or ``"cells"`` (notebook cells, each run
            separately so that one failing cell does not hide the functions of the others).
        cells: the code: one string for a module, one per code cell for a notebook.
        filename: the name tracebacks show (``weight_sharing.py`` or ``weight_sharing.ipynb``).
        origin: the path that was handed in.
        sha256: hash of the code, for the gradebook.
        notes: what the loader did that the student should know (shown in the report).
        skip_cells: indices into ``cells`` that the worker does not run: the release's worked
            examples and figures, which only demonstrate the student's functions.
        cell_numbers: for a notebook, each cell's position among all the notebook's cells
            (1-based, as a student counts in Jupyter); empty for a module.
    """

    kind: Literal["module", "cells"]
    cells: tuple[str, ...]
    filename: str
    origin: str
    sha256: str
    notes: tuple[str, ...] = field(default=())
    skip_cells: tuple[int, ...] = field(default=())
    cell_numbers: tuple[int, ...] = field(default=())

    def cell_label(self, index: int) -> str:
        """How messages name the code cell ``cells[index]``: ``"cell 22"``, Jupyter's count."""
        number = self.cell_numbers[index] if 0 <= index < len(self.cell_numbers) else index + 1
        return f"cell {number}"


def cells_digest(cells: Sequence[str]) -> str:
    """The hash that identifies a submission's code (the gradebook's ``sha256``)."""
    return hashlib.sha256("\0".join(cells).encode()).hexdigest()


def _read_regular_file(path: Path) -> bytes:
    """Read a submitted file: a regular file, never through a symbolic link, within the size cap."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as problem:
        if problem.errno == errno.ELOOP:
            raise SubmissionError(f"{path.name} is a symbolic link; hand in the file itself. {_EXPECTED}") from None
        raise SubmissionError(f"{path.name} cannot be read ({problem.strerror}). {_EXPECTED}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SubmissionError(f"{path.name} is not a regular file. {_EXPECTED}")
        if info.st_size > MAX_SOURCE_BYTES:
            raise SubmissionError(
                f"{path.name} is {info.st_size:,} bytes; the limit is {MAX_SOURCE_BYTES:,}. {_EXPECTED}"
            )
        data = handle.read(MAX_SOURCE_BYTES + 1)
    if len(data) > MAX_SOURCE_BYTES:
        raise SubmissionError(f"{path.name} is larger than {MAX_SOURCE_BYTES:,} bytes. {_EXPECTED}")
    return data


def _check_folder(folder: Path) -> None:
    """A submitted folder obeys the zip rules: no symbolic link anywhere, bounded size and count.

    An unpacked archive (unzip and tar both recreate links) could otherwise make the grader read,
    with its own rights, whatever a link points at.
    """
    if folder.is_symlink():
        raise SubmissionError(f"{folder.name} is a symbolic link; hand in the folder itself. {_EXPECTED}")
    count = total = 0
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                inside = path.relative_to(folder)
                raise SubmissionError(
                    f"{folder.name}/{inside} is a symbolic link; a submission holds real files only. {_EXPECTED}"
                )
            count += 1
            total += info.st_size if stat.S_ISREG(info.st_mode) else 0
        if count > 10 * MAX_ZIP_ENTRIES or total > MAX_ZIP_BYTES:
            raise SubmissionError(
                f"{folder.name}/ holds more than {10 * MAX_ZIP_ENTRIES} entries or {MAX_ZIP_BYTES:,} bytes. {_EXPECTED}"
            )


def _read_text(path: Path) -> str:
    data = _read_regular_file(path)
    if not data:
        raise SubmissionError(f"{path.name} is empty. {_EXPECTED}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as problem:
        raise SubmissionError(
            f"{path.name} is not UTF-8 text (byte 0x{data[problem.start]:02x} at offset {problem.start}); "
            "save it as UTF-8 and hand it in again"
        ) from None


#: The tag the release puts on its worked-example and figure cells (generated from the single
#: source): the grader does not run them, so a slow first implementation cannot cost its points
#: while the notebook's own demonstrations call it. Cells a student adds have no tag and run.
EXAMPLE_TAG = "wsgrade-example"


def notebook_code_cells(
    text: str,
    *,
    name: str = "weight_sharing.ipynb",
    examples: list[int] | None = None,
    positions: list[int] | None = None,
) -> tuple[tuple[str, ...], int]:
    """Extract the code cells of a notebook, without shell or magic lines.

    Args:
        text: the notebook's JSON.
        name: the file name, for messages.
        examples: if given, receives the indices (into the returned cells) of the release's worked
            examples (cells tagged ``EXAMPLE_TAG`` that define no function or class).
        positions: if given, receives each returned cell's position among all the notebook's cells
            (1-based, markdown included: the number a student counts to in Jupyter).

    Returns:
        ``(cells, removed)``: the code of each code cell, and how many lines were removed
        (a cell starting with ``%%`` is removed whole).

    Raises:
        SubmissionError: if the text is not a notebook.
    """
    try:
        notebook = json.loads(text)
        if isinstance(notebook, dict) and isinstance(notebook.get("nbformat"), int) and notebook["nbformat"] < 4:
            # An old format (cells inside "worksheets", code in "input"): nbformat converts it. A
            # current one is read as it is: nbformat's reader drops the code of a cell it finds
            # malformed, and nothing a student wrote may be lost.
            import nbformat

            try:
                notebook = nbformat.convert(nbformat.from_dict(notebook), 4)
            except nbformat.ValidationError as problem:
                raise ValueError(str(problem).splitlines()[0]) from None
        cells = notebook["cells"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as problem:
        raise SubmissionError(f"{name} is not a valid Jupyter notebook ({problem}); {_EXPECTED}") from None
    return code_cells(cells if isinstance(cells, list) else [], examples=examples, positions=positions)


def code_cells(
    cells: Sequence[Any], *, examples: list[int] | None = None, positions: list[int] | None = None
) -> tuple[tuple[str, ...], int]:
    """The code of a notebook's code cells (parsed cells: dicts or nbformat nodes).

    Shell and magic lines become empty lines, so that line numbers in tracebacks match the cell
    the student sees. See :func:`notebook_code_cells` for the arguments and the result.
    """
    codes: list[str] = []
    removed = 0
    for position, cell in enumerate(cells, 1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        lines = source.splitlines()
        if lines and lines[0].lstrip().startswith("%%"):
            removed += len(lines)
            continue
        kept = ["" if _MAGIC.match(line) else line for line in lines]
        removed += sum(1 for line in lines if _MAGIC.match(line))
        code = "\n".join(kept) + "\n"
        metadata = cell.get("metadata")
        tags = metadata.get("tags", []) if isinstance(metadata, dict) else []
        if examples is not None and isinstance(tags, list) and EXAMPLE_TAG in tags and not _defines_something(code):
            examples.append(len(codes))
        if positions is not None:
            positions.append(position)
        codes.append(code)
    return tuple(codes), removed


def _defines_something(code: str) -> bool:
    """Whether code defines a function or class at the top level (then it runs even in an example cell)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in tree.body)


def _prepare_file(path: Path, origin: str, notes: list[str]) -> PreparedSubmission:
    text = _read_text(path)
    examples: list[int] = []
    positions: list[int] = []
    kind: Literal["module", "cells"]
    if path.suffix == ".ipynb":
        cells, removed = notebook_code_cells(text, name=path.name, examples=examples, positions=positions)
        if removed:
            notes.append(f"{removed} shell/magic line(s) (starting with ! or %) were not run")
        kind, filename = "cells", "weight_sharing.ipynb"
    else:
        cells, kind, filename = (text,), "module", "weight_sharing.py"
    return PreparedSubmission(
        kind, cells, filename, origin, cells_digest(cells), tuple(notes), tuple(examples), tuple(positions)
    )


def _stub_count(path: Path) -> int:
    try:
        return path.read_text(errors="replace").count("raise NotImplementedError")
    except OSError:
        return 1 << 30


def _pick_in_folder(folder: Path, notes: list[str]) -> Path:
    found = [folder / name for name in ("weight_sharing.py", "weight_sharing.ipynb") if (folder / name).is_file()]
    if not found:
        nested = [p for p in folder.rglob("weight_sharing.*") if p.suffix in (".py", ".ipynb") and p.is_file()]
        nested = [p for p in nested if "__MACOSX" not in p.parts and ".ipynb_checkpoints" not in p.parts]
        if len({p.parent for p in nested}) == 1:
            found = sorted(nested)
    if not found:
        candidates = [p for p in folder.iterdir() if p.suffix in (".py", ".ipynb") and p.is_file()]
        if len(candidates) == 1:
            notes.append(
                f"graded {candidates[0].name} (the only Python file; please name it weight_sharing.py next time)"
            )
            return candidates[0]
        listing = ", ".join(sorted(p.name for p in folder.iterdir())[:10]) or "nothing"
        raise SubmissionError(
            f"no weight_sharing.py or weight_sharing.ipynb in {folder.name}/ (it holds {listing}); {_EXPECTED}"
        )
    if len(found) == 2:
        chosen = min(found, key=_stub_count)  # the one with fewer stubs left is the one worked on
        notes.append(
            "both weight_sharing.py and weight_sharing.ipynb were handed in; "
            f"graded {chosen.name}, which has fewer stubs left"
        )
        return chosen
    return found[0]


def _safe_extract(archive: Path, into: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zipped:
            entries = zipped.infolist()
            if len(entries) > MAX_ZIP_ENTRIES:
                raise SubmissionError(
                    f"{archive.name} holds {len(entries)} files; the limit is {MAX_ZIP_ENTRIES}. {_EXPECTED}"
                )
            total = sum(entry.file_size for entry in entries)
            if total > MAX_ZIP_BYTES:
                raise SubmissionError(
                    f"{archive.name} unpacks to {total:,} bytes; the limit is {MAX_ZIP_BYTES:,}. {_EXPECTED}"
                )
            for entry in entries:
                name = PurePosixPath(entry.filename)
                if name.is_absolute() or ".." in name.parts or "\\" in entry.filename:
                    raise SubmissionError(
                        f"{archive.name} contains the unsafe path {entry.filename!r}; zip the folder itself"
                    )
                if stat.S_ISLNK(entry.external_attr >> 16):
                    raise SubmissionError(
                        f"{archive.name} contains a symbolic link ({entry.filename}); zip real files only"
                    )
                if entry.flag_bits & 0x1:
                    raise SubmissionError(f"{archive.name}: {entry.filename} is encrypted; zip it without a password")
                try:
                    _extract_member(zipped, entry, into / name, archive)
                except SubmissionError:
                    raise
                except NotImplementedError as problem:  # an unknown compression method
                    raise SubmissionError(
                        f"{archive.name}: {entry.filename} uses a compression this grader cannot read ({problem}); "
                        "zip it again with the ordinary (deflate) compression"
                    ) from None
                except (OSError, zlib.error, EOFError, RuntimeError, ValueError, zipfile.BadZipFile) as problem:
                    raise SubmissionError(
                        f"{archive.name}: {entry.filename[:200]} cannot be unpacked ({type(problem).__name__}: "
                        f"{str(problem)[:200]}); zip the folder again. {_EXPECTED}"
                    ) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as problem:
        raise SubmissionError(f"{archive.name} is not a valid zip file ({problem}); {_EXPECTED}") from None


def _extract_member(zipped: zipfile.ZipFile, entry: zipfile.ZipInfo, target: Path, archive: Path) -> None:
    if entry.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipped.open(entry) as source, open(target, "xb") as sink:
        written = 0
        while chunk := source.read(1 << 16):
            written += len(chunk)
            if written > entry.file_size or written > MAX_SOURCE_BYTES * 4:
                raise SubmissionError(f"{archive.name}: {entry.filename} unpacks to more than it declares")
            sink.write(chunk)


def load_submission(path: str | Path) -> PreparedSubmission:
    """Find and read the submission at ``path``.

    Args:
        path: a ``.py`` or ``.ipynb`` file, a folder, or a ``.zip``.

    Returns:
        The prepared submission.

    Raises:
        SubmissionError: with a message that says what was wrong and what to hand in.
    """
    path = Path(path)
    notes: list[str] = []
    if path.is_symlink():
        raise SubmissionError(f"{path.name} is a symbolic link; hand in the file or folder itself. {_EXPECTED}")
    if not path.exists():
        raise SubmissionError(f"{path} does not exist; {_EXPECTED}")
    if path.is_dir():
        _check_folder(path)
        return _prepare_file(_pick_in_folder(path, notes), str(path), notes)
    if path.suffix == ".zip":
        with tempfile.TemporaryDirectory(prefix="wsgrade-zip-") as tmp:
            _safe_extract(path, Path(tmp))
            return _prepare_file(_pick_in_folder(Path(tmp), notes), str(path), notes)
    if path.suffix in (".py", ".ipynb"):
        if path.stem != "weight_sharing":
            notes.append(f"graded {path.name} (please name it weight_sharing{path.suffix} next time)")
        return _prepare_file(path, str(path), notes)
    raise SubmissionError(f"{path.name} is not a submission; {_EXPECTED}")
