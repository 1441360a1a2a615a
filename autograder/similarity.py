"""The class copy check: ``wsgrade similarity``, MOSS-style fingerprints by ``copydetect``.

Every student's code is read with :func:`autograder.submission.load_submission` (a notebook
becomes its code cells), tokenised by copydetect (names become ``V``/``F``, strings ``S``,
comments and layout vanish, so renaming and reformatting change nothing) and cut into k-grams of
``noise`` filtered characters. The pipeline, in order:

1. collect the code: from a grade-all output folder (``students/<id>/submission.py``, stored by
   grade-all) or from the submissions folder itself; broken entries are listed, never fatal;
2. fingerprint the starter code (the release's ``weight_sharing.py`` and the notebook's code cells)
   and drop its k-grams from every student (it is boilerplate, not copying);
3. fingerprint each student; k-grams found in more than ``max_sharing`` students are treated like
   the starter code too (MOSS's ``-m``: code that many students share is the assignment's idiom);
4. compare only the pairs that share a fingerprint (an inverted index: the others score 0 exactly),
   with copydetect's ``compare_files``;
5. rank the pairs and render them: a rich table here, copydetect's HTML page with the matched code
   highlighted.

copydetect is an optional dependency (the ``class`` extra); it is imported only when a report is
built, so grading never needs it. Every k-gram is kept (window 1, ``guarantee == noise``): the
scores then do not depend on Python's per-process string hash seed.
"""

from __future__ import annotations

import bisect
import io
import time
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.source import REPO_ROOT
from autograder.submission import PreparedSubmission, SubmissionError, load_submission

__all__ = [
    "CODE_FILE",
    "DEFAULT_MAX_SHARING",
    "DEFAULT_NOISE",
    "DEFAULT_TOP",
    "STARTER_FILES",
    "SimilarPair",
    "SimilarityReport",
    "StudentCode",
    "collect_code",
    "default_html_path",
    "print_similarity",
    "similarity_report",
    "submitted_code",
    "write_submitted_code",
]

CODE_FILE = "submission.py"
DEFAULT_NOISE = 25
DEFAULT_MAX_SHARING = 10
DEFAULT_TOP = 20
_RELEASE = REPO_ROOT / "assignments" / "weight_sharing"  # autograder.release.RELEASE_DIR, without its imports
STARTER_FILES = (_RELEASE / "weight_sharing.py", _RELEASE / "weight_sharing.ipynb")
_INSTALL = 'the similarity check needs copydetect; install it with: pip install -e ".[class]"'


@dataclass(frozen=True)
class StudentCode:
    """One student's code as graded.

    Attributes:
        student: the student id (the entry's name, as in the gradebook).
        code: the code; a notebook's code cells joined, each after a ``# %% code cell N`` line.
        origin: where it was read from.
    """

    student: str
    code: str
    origin: str


@dataclass(frozen=True)
class SimilarPair:
    """Two students whose code shares fingerprints.

    Attributes:
        student_a: the first student (alphabetically).
        student_b: the second student.
        similarity_a: the fraction of ``student_a``'s fingerprinted code also found in ``student_b``'s.
        similarity_b: the fraction of ``student_b``'s fingerprinted code also found in ``student_a``'s.
        matched_tokens: filtered tokens of ``student_a``'s code in the matched regions.
        regions_a: the matched regions of ``student_a``'s code, ``(first line, last line)``, 1-based.
        regions_b: the matched regions of ``student_b``'s code.
    """

    student_a: str
    student_b: str
    similarity_a: float
    similarity_b: float
    matched_tokens: int
    regions_a: tuple[tuple[int, int], ...]
    regions_b: tuple[tuple[int, int], ...]

    @property
    def similarity(self) -> float:
        """The larger of the two fractions (one student may have copied part of a longer file)."""
        return max(self.similarity_a, self.similarity_b)

    def to_dict(self) -> dict[str, Any]:
        """The pair as JSON-able data."""
        return {
            "students": [self.student_a, self.student_b],
            "similarity": round(self.similarity, 4),
            "similarity_a": round(self.similarity_a, 4),
            "similarity_b": round(self.similarity_b, 4),
            "matched_tokens": self.matched_tokens,
            "regions_a": [list(region) for region in self.regions_a],
            "regions_b": [list(region) for region in self.regions_b],
        }


@dataclass(frozen=True)
class SimilarityReport:
    """The class similarity report.

    Attributes:
        source: the folder the code came from.
        students: the students compared.
        skipped: ``(entry, reason)`` for entries whose code could not be read.
        pairs: every pair sharing fingerprints, most similar first.
        compared: pairs compared by copydetect (those sharing at least one fingerprint).
        starter: the starter files whose code was ignored.
        common_fingerprints: fingerprints ignored because more than ``max_sharing`` students had them.
        noise: the k-gram length, in filtered characters.
        max_sharing: the sharing limit used.
        seconds: wall time of the check.
        html: the HTML page written, if any.
    """

    source: str
    students: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    pairs: tuple[SimilarPair, ...]
    compared: int
    starter: tuple[str, ...]
    common_fingerprints: int
    noise: int
    max_sharing: int
    seconds: float
    html: str | None

    def pair(self, first: str, second: str) -> SimilarPair | None:
        """The pair of these two students, or ``None`` if they share no fingerprint."""
        wanted = {first, second}
        return next((p for p in self.pairs if {p.student_a, p.student_b} == wanted), None)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able data."""
        return {
            "source": self.source,
            "students": list(self.students),
            "skipped": [{"entry": entry, "reason": reason} for entry, reason in self.skipped],
            "pairs": [pair.to_dict() for pair in self.pairs],
            "compared": self.compared,
            "starter": list(self.starter),
            "common_fingerprints": self.common_fingerprints,
            "noise": self.noise,
            "max_sharing": self.max_sharing,
            "seconds": round(self.seconds, 3),
            "html": self.html,
        }


def submitted_code(submission: PreparedSubmission) -> str:
    """The code of a prepared submission as one text (the form compared and stored).

    Args:
        submission: the loaded submission.

    Returns:
        A module's text, or a notebook's code cells each after a ``# %% code cell N`` line.
    """
    if submission.kind == "module":
        return submission.cells[0]
    return "".join(f"# %% code cell {number}\n{cell}" for number, cell in enumerate(submission.cells, 1))


def write_submitted_code(entry: Path, folder: Path) -> Path | None:
    """Store a student's code in their grade-all folder, so that ``wsgrade similarity OUT`` needs only OUT.

    Args:
        entry: the student's entry as handed in (file, folder or zip).
        folder: the student's output folder (``OUT/students/<id>``).

    Returns:
        The file written, or ``None`` if the entry is not a readable submission (an older copy is
        removed, so a stale file never stands for a new entry).
    """
    from autograder.report import write_text_atomic

    target = folder / CODE_FILE
    try:
        code = submitted_code(load_submission(entry))
        write_text_atomic(code, target)
    except (SubmissionError, OSError):
        target.unlink(missing_ok=True)
        return None
    return target


def _read_entry(path: Path) -> str:
    return submitted_code(load_submission(path))


def collect_code(source: Path) -> tuple[tuple[StudentCode, ...], tuple[tuple[str, str], ...]]:
    """Read every student's code from a grade-all output folder or a submissions folder.

    A folder holding ``gradebook.sqlite`` is a grade-all output folder: the code is read from
    ``students/<id>/submission.py``. Any other folder is a submissions folder with one entry per
    student (named as grade-all names them), each read with ``load_submission``.

    Args:
        source: the folder.

    Returns:
        ``(students, skipped)``: the code read, sorted by student, and ``(entry, reason)`` for
        each entry that could not be read.

    Raises:
        ValueError: if ``source`` is not a folder, or two entries map to the same student id.
    """
    from autograder.batch import list_entries

    if not source.is_dir():
        raise ValueError(
            f"{source} is not a folder; pass the --out folder of grade-all, "
            "or the submissions folder (one entry per student)"
        )
    students: list[StudentCode] = []
    skipped: list[tuple[str, str]] = []
    if (source / "gradebook.sqlite").is_file():
        folders = sorted(p for p in (source / "students").glob("*") if p.is_dir())
        for folder in folders:
            path = folder / CODE_FILE
            try:
                students.append(StudentCode(folder.name, path.read_text(encoding="utf-8"), str(path)))
            except FileNotFoundError:
                skipped.append(
                    (folder.name, f"no {CODE_FILE} (not a submission, or graded by a wsgrade that did not store it)")
                )
            except (OSError, UnicodeDecodeError) as problem:
                skipped.append((folder.name, f"{path} could not be read ({problem})"))
        return tuple(students), tuple(skipped)
    for student, path in list_entries(source):
        try:
            students.append(StudentCode(student, _read_entry(path), str(path)))
        except SubmissionError as problem:
            skipped.append((path.name, str(problem)))
        except (OSError, ValueError) as problem:  # unreadable files, odd archives: report, never crash
            skipped.append((path.name, f"could not be read ({type(problem).__name__}: {problem})"))
    return tuple(students), tuple(skipped)


def default_html_path(source: Path) -> Path:
    """Where the HTML page goes by default: inside a grade-all output folder, else the current folder.

    Args:
        source: the folder checked.

    Returns:
        ``source/similarity.html`` for a grade-all output folder, ``similarity.html`` otherwise
        (never inside a submissions folder, where it would become a student).
    """
    return source / "similarity.html" if (source / "gradebook.sqlite").is_file() else Path("similarity.html")


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"{name} must be an integer of at least {minimum}, got {value!r} of type {type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _regions(code: str, slices: Any) -> tuple[tuple[int, int], ...]:
    """Character slices ``(2, M)`` of a code text as 1-based ``(first line, last line)`` ranges."""
    breaks = [i for i, char in enumerate(code) if char == "\n"]
    regions: list[tuple[int, int]] = []
    for start, end in zip(slices[0], slices[1], strict=True):
        first = bisect.bisect_left(breaks, int(start)) + 1
        last = bisect.bisect_left(breaks, max(int(end) - 1, int(start))) + 1
        if regions and first <= regions[-1][1] + 1:
            regions[-1] = (regions[-1][0], max(last, regions[-1][1]))
        else:
            regions.append((first, last))
    return tuple(regions)


def _starter_hashes(starter: Sequence[Path], noise: int) -> tuple[Any, tuple[str, ...]]:
    import numpy as np
    from copydetect import CodeFingerprint

    hashes: list[Any] = []
    used: list[str] = []
    for path in starter:
        try:
            code = _read_entry(path)
        except SubmissionError as problem:
            raise ValueError(f"starter file {path} could not be read: {problem}") from None
        fingerprint = CodeFingerprint(str(path), noise, 1, None, True, "python", fp=io.StringIO(code))
        hashes.extend(fingerprint.hashes)
        used.append(str(path))
    return np.unique(np.array(hashes, dtype=np.int64)), tuple(used)


def similarity_report(
    source: Path,
    *,
    html: Path | None = None,
    top: int = DEFAULT_TOP,
    noise: int = DEFAULT_NOISE,
    max_sharing: int = DEFAULT_MAX_SHARING,
    starter: Sequence[Path] = STARTER_FILES,
) -> SimilarityReport:
    """Compare the code of every student in ``source`` (see the module docstring).

    Args:
        source: a grade-all output folder or a submissions folder.
        html: write copydetect's HTML page here (the ``top`` pairs, matched code highlighted).
        top: how many pairs the HTML page shows (the report keeps every pair).
        noise: k-gram length in filtered characters: shorter matches are never counted.
        max_sharing: fingerprints in more than this many students' code are ignored as common code.
        starter: the starter code to ignore (default: the student release's file and notebook).

    Returns:
        The report.

    Raises:
        ValueError: if ``source`` is not a folder, fewer than two students have readable code, a
            starter file cannot be read, or an option is out of range.
        ImportError: if copydetect is not installed (the message says how to install it).
    """
    _check_int("top", top, 1)
    _check_int("noise", noise, 5)
    _check_int("max_sharing", max_sharing, 2)
    started = time.perf_counter()
    students, skipped = collect_code(Path(source))
    if len(students) < 2:
        reasons = "".join(f"\n  {entry}: {reason}" for entry, reason in skipped)
        raise ValueError(
            f"{source}: {len(students)} student(s) with readable code; a similarity check needs at least two{reasons}"
        )
    try:
        import numpy as np
        from copydetect import CodeFingerprint, compare_files
    except ImportError as problem:
        raise ImportError(f"{_INSTALL} ({problem})", name=problem.name) from None

    boilerplate, starter_used = _starter_hashes(starter, noise)

    def fingerprint(student: StudentCode, ignored: Any) -> Any:
        return CodeFingerprint(student.student, noise, 1, ignored, True, "python", fp=io.StringIO(student.code))

    prints = [fingerprint(student, boilerplate) for student in students]
    holders: defaultdict[Any, list[int]] = defaultdict(list)
    for index, fp in enumerate(prints):
        for value in fp.hashes:
            holders[value].append(index)
    common = [value for value, who in holders.items() if len(who) > max_sharing]
    if common:
        ignored = np.union1d(boilerplate, np.array(common, dtype=np.int64))
        for index in sorted({i for value in common for i in holders[value]}):
            prints[index] = fingerprint(students[index], ignored)
        for value in common:
            del holders[value]
    candidates = sorted({(a, b) for who in holders.values() for k, a in enumerate(who) for b in who[k + 1 :]})
    pairs: list[SimilarPair] = []
    slices: dict[tuple[int, int], Any] = {}
    for a, b in candidates:
        overlap, (sim_a, sim_b), (slices_a, slices_b) = compare_files(prints[a], prints[b])
        if overlap <= 0:
            continue
        slices[a, b] = (slices_a, slices_b)
        pairs.append(
            SimilarPair(
                students[a].student,
                students[b].student,
                float(sim_a),
                float(sim_b),
                int(overlap),
                _regions(prints[a].raw_code, slices_a),
                _regions(prints[b].raw_code, slices_b),
            )
        )
    pairs.sort(key=lambda p: (-p.similarity, -p.matched_tokens, p.student_a, p.student_b))
    if html is not None:
        _write_html(Path(html), students, prints, pairs, slices, top=top, noise=noise)
    return SimilarityReport(
        source=str(source),
        students=tuple(s.student for s in students),
        skipped=skipped,
        pairs=tuple(pairs),
        compared=len(candidates),
        starter=starter_used,
        common_fingerprints=len(common),
        noise=noise,
        max_sharing=max_sharing,
        seconds=time.perf_counter() - started,
        html=str(html) if html is not None else None,
    )


def _write_html(
    path: Path,
    students: Sequence[StudentCode],
    prints: Sequence[Any],
    pairs: Sequence[SimilarPair],
    slices: dict[tuple[int, int], Any],
    *,
    top: int,
    noise: int,
) -> None:
    """copydetect's own report page, filled with the comparisons made here (the top pairs listed)."""
    import matplotlib
    import numpy as np
    from copydetect import CopyDetector

    from autograder.report import write_text_atomic

    names = [s.student for s in students]
    shown = pairs[:top]
    threshold = max(shown[-1].similarity - 1e-9, 0.0) if shown else 1.0
    path.parent.mkdir(parents=True, exist_ok=True)
    detector = CopyDetector(
        noise_t=noise,
        guarantee_t=noise,
        display_t=min(threshold, 1.0),
        autoopen=False,
        silent=True,
        truncate=True,
        force_language="python",
        out_file=str(path.with_suffix(".html")),
    )
    count = len(names)
    matrix = np.zeros((count, count, 2))
    overlaps = np.zeros((count, count), dtype=np.int64)
    np.fill_diagonal(matrix[:, :, 0], -1)
    np.fill_diagonal(matrix[:, :, 1], -1)
    index = {name: i for i, name in enumerate(names)}
    for pair in pairs:
        a, b = index[pair.student_a], index[pair.student_b]
        matrix[a, b] = (pair.similarity_a, pair.similarity_b)
        matrix[b, a] = (pair.similarity_b, pair.similarity_a)
        overlaps[a, b] = overlaps[b, a] = pair.matched_tokens
    detector.test_files = detector.ref_files = names
    detector.file_data = dict(zip(names, prints, strict=True))
    detector.similarity_matrix = matrix
    detector.token_overlap_matrix = overlaps
    detector.slice_matrix = {(names[a], names[b]): list(pair_slices) for (a, b), pair_slices in slices.items()}
    backend = matplotlib.get_backend()
    matplotlib.use("Agg")  # the page's two figures are drawn off-screen, on any machine
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # copydetect reads its template with open_text
            page = detector.generate_html_report(output_mode="return")
    finally:
        matplotlib.use(backend)
    write_text_atomic(page, path)


def _lines(regions: tuple[tuple[int, int], ...], shown: int = 3) -> str:
    text = ", ".join(f"{first}-{last}" if last > first else str(first) for first, last in regions[:shown])
    return text + (f" (+{len(regions) - shown} more)" if len(regions) > shown else "")


def print_similarity(report: SimilarityReport, console: Any, *, top: int = DEFAULT_TOP) -> None:
    """Print the most similar pairs as a table, with the matched line ranges of each student.

    Args:
        report: the report.
        console: a ``rich.console.Console``.
        top: how many pairs to list.
    """
    from rich.table import Table

    console.print(
        f"compared {len(report.students)} students ({report.compared} pairs share fingerprints) "
        f"in {report.seconds:.1f} s; starter code ignored: {', '.join(Path(p).name for p in report.starter) or 'none'}"
    )
    if report.common_fingerprints:
        console.print(
            f"{report.common_fingerprints} fingerprints were in more than {report.max_sharing} students' code "
            "and were ignored as common code"
        )
    table = Table(title=f"most similar pairs (top {min(top, len(report.pairs))} of {len(report.pairs)})")
    table.add_column("#", justify="right")
    table.add_column("student A")
    table.add_column("student B")
    table.add_column("A in B", justify="right")
    table.add_column("B in A", justify="right")
    table.add_column("tokens", justify="right")
    table.add_column("lines of A")
    table.add_column("lines of B")
    for rank, pair in enumerate(report.pairs[:top], 1):
        style = "bold red" if pair.similarity >= 0.8 else "yellow" if pair.similarity >= 0.5 else None
        table.add_row(
            str(rank),
            pair.student_a,
            pair.student_b,
            f"{pair.similarity_a:.0%}",
            f"{pair.similarity_b:.0%}",
            str(pair.matched_tokens),
            _lines(pair.regions_a),
            _lines(pair.regions_b),
            style=style,
        )
    console.print(table)
    if report.skipped:
        console.print("not compared:")
        for entry, reason in report.skipped:
            console.print(f"  {entry}: {reason[:200]}", markup=False, highlight=False)
