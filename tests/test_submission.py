"""The loader: every malformed archive or folder is 'not a submission' with a message, never a crash."""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from autograder.release import RELEASE_DIR
from autograder.submission import SubmissionError, load_submission

STUBS = (RELEASE_DIR / "weight_sharing.py").read_text()


def _zip(path: Path, members: dict[str, bytes], **options: object) -> Path:
    with zipfile.ZipFile(path, "w", **options) as archive:  # type: ignore[arg-type]
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _encrypted(path: Path) -> Path:
    _zip(path, {"weight_sharing.py": STUBS.encode()})
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the "encrypted" flag bit
        at = data.index(signature)
        flags = struct.unpack_from("<H", data, at + offset)[0]
        struct.pack_into("<H", data, at + offset, flags | 0x1)
    path.write_bytes(bytes(data))
    return path


def _unknown_method(path: Path) -> Path:
    _zip(path, {"weight_sharing.py": STUBS.encode()})
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # compression method 99 (AES)
        struct.pack_into("<H", data, data.index(signature) + offset, 99)
    path.write_bytes(bytes(data))
    return path


def _corrupt_deflate(path: Path) -> Path:
    _zip(path, {"weight_sharing.py": STUBS.encode() * 3}, compression=zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    start = data.index(b"PK\x03\x04") + 30 + len("weight_sharing.py")
    for i in range(start + 20, start + 200):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


def _file_and_folder(path: Path) -> Path:
    return _zip(path, {"work": b"a file", "work/weight_sharing.py": STUBS.encode()})


def _long_name(path: Path) -> Path:
    return _zip(path, {"x" * 300 + "/weight_sharing.py": STUBS.encode()})


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (_encrypted, "encrypted"),
        (_unknown_method, "compression"),
        (_corrupt_deflate, "cannot be unpacked"),
        (_file_and_folder, "cannot be unpacked"),
        (_long_name, "cannot be unpacked"),
    ],
    ids=["encrypted", "unknown-method", "corrupt-deflate", "file-and-folder", "name-too-long"],
)
def test_a_malformed_zip_is_not_a_submission(tmp_path: Path, make: Callable[[Path], Path], words: str) -> None:
    with pytest.raises(SubmissionError, match=words):
        load_submission(make(tmp_path / "student.zip"))


def test_a_zip_itself_given_as_a_link_is_refused(tmp_path: Path) -> None:
    real = _zip(tmp_path / "real.zip", {"weight_sharing.py": STUBS.encode()})
    (tmp_path / "link.zip").symlink_to(real)
    with pytest.raises(SubmissionError, match="symbolic link"):
        load_submission(tmp_path / "link.zip")
    assert load_submission(real).kind == "module"


def test_a_special_file_is_not_read(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "weight_sharing.py")  # reading it would block the grader for ever
    with pytest.raises(SubmissionError, match="not a regular file"):
        load_submission(tmp_path / "weight_sharing.py")


def test_a_huge_notebook_of_failing_cells_gives_a_bounded_report(tmp_path: Path) -> None:
    import json

    from autograder.grading import grade

    cells = [{"cell_type": "code", "source": f"raise ValueError('cell {i}')", "metadata": {}} for i in range(3000)]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "weight_sharing.ipynb").write_text(json.dumps(notebook))
    report = grade(tmp_path / "weight_sharing.ipynb", select="test_conv2d_hand", performance=False)
    assert len(report.output) < 20_000
    assert "more notebook cells raised" in report.output


# Which file is graded when a folder holds several candidates.

SOLVED = "def conv2d(image, kernel):\n    return image\n"


def _folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "student"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def test_a_folder_with_both_files_grades_the_one_with_fewer_stubs(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SOLVED)])
    folder = _folder(tmp_path, {"weight_sharing.py": STUBS, "weight_sharing.ipynb": nbformat.writes(nb)})
    submission = load_submission(folder)
    assert submission.kind == "cells" and submission.cells == (SOLVED,)
    assert any("graded weight_sharing.ipynb, which has fewer stubs left" in note for note in submission.notes)


def test_a_folder_grades_its_only_python_file_whatever_its_name_and_says_so(tmp_path: Path) -> None:
    submission = load_submission(_folder(tmp_path, {"hw3_final.py": SOLVED, "notes.txt": "hello"}))
    assert submission.cells == (SOLVED,)
    assert any("graded hw3_final.py" in note and "weight_sharing.py next time" in note for note in submission.notes)


def test_a_nested_weight_sharing_file_is_found_but_macos_and_checkpoint_copies_are_not(tmp_path: Path) -> None:
    folder = _folder(
        tmp_path,
        {
            "hw/weight_sharing.py": SOLVED,
            "__MACOSX/hw/weight_sharing.py": "garbage",
            "hw/.ipynb_checkpoints/weight_sharing.ipynb": "{}",
        },
    )
    assert load_submission(folder).cells == (SOLVED,)


@pytest.mark.parametrize(
    "files",
    [{"a.py": SOLVED, "b.py": SOLVED}, {"one/weight_sharing.py": SOLVED, "two/weight_sharing.py": SOLVED}, {}],
    ids=["two-other-python-files", "two-nested-copies", "empty"],
)
def test_an_ambiguous_or_empty_folder_is_not_a_submission(tmp_path: Path, files: dict[str, str]) -> None:
    folder = _folder(tmp_path, files)
    folder.mkdir(exist_ok=True)
    with pytest.raises(SubmissionError, match=r"no weight_sharing\.py or weight_sharing\.ipynb"):
        load_submission(folder)
