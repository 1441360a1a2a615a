"""Reading the single source of truth, ``solutions/weight_sharing.py``.

The source is a Jupytext "percent" script: ``# %%`` starts a code cell, ``# %% [markdown]`` a
markdown cell written as comments. Solution code sits between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` (nbgrader's markers):

* inside a task function, the region becomes ``raise NotImplementedError("Task 1.1: conv2d ...")``
  in the student release;
* at module level (the reference's private helpers), the region is dropped from the release.

Code cells made only of imports and definitions form the *module*; every other code cell (worked
examples, figures) belongs to the notebook only, so importing the module never runs them.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from autograder.tasks import tasks_for_function

__all__ = [
    "BEGIN",
    "END",
    "REPO_ROOT",
    "SHELL_LINE",
    "SOLUTION_SOURCE",
    "Cell",
    "SourceError",
    "inline_helpers",
    "is_definition_code",
    "module_text",
    "solution_regions",
    "split_cells",
    "strip_solutions",
    "stub_message",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
SOLUTION_SOURCE = REPO_ROOT / "solutions" / "weight_sharing.py"
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"

_CELL_HEADER = re.compile(r"^# %%(?P<rest>.*)$")


class SourceError(ValueError):
    """The single source breaks one of the rules above; the message names the line."""


@dataclass(frozen=True)
class Cell:
    """One cell of the percent script.

    Attributes:
        kind: ``"code"`` or ``"markdown"``.
        header: the ``# %% ...`` line.
        body: the cell's lines after the header, as in the file (markdown still commented).
        first_line: 1-based line number of the first body line in the file.
    """

    kind: str
    header: str
    body: tuple[str, ...]
    first_line: int

    @property
    def code(self) -> str:
        """The body as text, trailing blank lines removed."""
        return "\n".join(self.body).rstrip() + "\n" if any(line.strip() for line in self.body) else ""

    @property
    def markdown(self) -> str:
        """For a markdown cell: the text with the leading ``# `` of each line removed."""
        lines = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in self.body]
        return "\n".join(lines).strip() + "\n"


def split_cells(text: str) -> tuple[str, list[Cell]]:
    """Split a percent script into its header (the Jupytext YAML block) and cells.

    Args:
        text: the script.

    Returns:
        ``(header, cells)``; the header is everything before the first ``# %%`` line.
    """
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _CELL_HEADER.match(line)]
    header = "\n".join(lines[: starts[0]] if starts else lines)
    cells = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        head = lines[start]
        kind = "markdown" if "[markdown]" in head else "code"
        cells.append(Cell(kind, head, tuple(lines[start + 1 : end]), start + 2))
    return header, cells


def is_definition_code(code: str) -> bool:
    """Whether a code cell belongs to the module: only imports, definitions and docstrings.

    Args:
        code: the cell's source.

    Returns:
        True when every top-level statement is an import, a ``def``/``class`` or a bare string.
    """
    tree = ast.parse(code)
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)
    return bool(tree.body) and all(
        isinstance(node, allowed) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
        for node in tree.body
    )


def stub_message(function: str) -> str:
    """The text a stub raises: ``Task 1.1: conv2d is not implemented yet ...``.

    Args:
        function: the contract function.

    Returns:
        The message.

    Raises:
        SourceError: if ``function`` is not a task of the contract.
    """
    tasks = tasks_for_function(function)
    if not tasks:
        raise SourceError(f"a solution region sits inside {function}(), which is not a task in autograder/tasks.py")
    return f"Task {tasks[0].id}: {function} is not implemented yet (replace this line with your code)"


def strip_solutions(code: str, *, where: str = "<cell>", first_line: int = 1) -> str:
    """Replace every solution region of a code cell by its stub (see the module docstring).

    Args:
        code: the cell's source.
        where: the file name used in error messages.
        first_line: the file line of the code's first line, for error messages.

    Returns:
        The student version of the code.

    Raises:
        SourceError: for an unterminated or nested region, or one inside a function that is not a task.
    """
    lines = code.splitlines()
    try:
        tree = ast.parse(code)
    except SyntaxError as problem:
        at = first_line + (problem.lineno or 1) - 1
        raise SourceError(f"{where}:{at}: not valid Python ({problem.msg})") from None
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    out: list[str] = []
    inside = False
    for number, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise SourceError(f"{where}:{first_line + number - 1}: nested {BEGIN}")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            enclosing = [f for f in functions if f.lineno < number <= (f.end_lineno or f.lineno)]
            if enclosing:
                innermost = max(enclosing, key=lambda f: f.lineno)
                out.append(f"{indent}raise NotImplementedError({stub_message(innermost.name)!r})")
        elif marker == END:
            if not inside:
                raise SourceError(f"{where}:{first_line + number - 1}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise SourceError(f"{where}: {BEGIN} is never closed")
    text = "\n".join(out)
    return text.strip("\n") + "\n" if text.strip() else ""


def module_text(text: str, *, stubs: bool) -> str:
    """The importable module made of the definition cells of a percent script.

    Args:
        text: the percent script.
        stubs: False for the reference: every other line is blanked so that line numbers in
            tracebacks match the source file. True for the student release: a tidy module with
            solution regions stubbed and a comment banner per part.

    Returns:
        Python source.
    """
    _, cells = split_cells(text)
    if not stubs:
        lines = [""] * len(text.splitlines())
        for cell in cells:
            if cell.kind == "code" and is_definition_code(cell.code):
                for offset, line in enumerate(cell.body):
                    lines[cell.first_line - 1 + offset] = line
        return "\n".join(lines) + "\n"
    chunks: list[str] = []
    banner = ""  # a part's banner is written only when a definition follows it
    for cell in cells:
        if cell.kind == "markdown":
            title = cell.markdown.splitlines()[0]
            if title.startswith("## "):
                banner = f"# {'-' * 96}\n# {title[3:]}\n# {'-' * 96}\n"
        elif is_definition_code(cell.code):
            stripped = strip_solutions(cell.code, where=str(SOLUTION_SOURCE.name), first_line=cell.first_line)
            if stripped:
                chunks += [banner, stripped] if banner else [stripped]
                banner = ""
    return "\n\n".join(chunks)


#: A notebook shell or magic line (``!cmd``, ``%magic``, ``get_ipython().system(...)``).
SHELL_LINE = re.compile(r"^\s*(?:[!%]|get_ipython\(\)\.)")


@dataclass(frozen=True)
class _Region:
    """One solution region of a cell: 0-based line numbers of its markers, its indent, where it sits."""

    begin: int
    end: int
    indent: str
    in_function: bool

    def holds(self, line: int) -> bool:
        """Whether a 1-based source line lies strictly between the markers."""
        return self.begin < line - 1 < self.end


def _python_view(source: str) -> str:
    """The cell as plain Python, line for line: each shell or magic line becomes ``pass``, a cell magic nothing."""
    if source.lstrip().startswith("%%"):
        return ""
    return "\n".join(re.sub(r"^(\s*)[!%].*", r"\1pass", line) for line in source.splitlines())


def solution_regions(source: str, where: str) -> tuple[list[_Region], ast.Module]:
    """Find the solution regions of one cell's code.

    Raises:
        SourceError: for code that does not parse, or a region that is nested or never closed.
    """
    try:
        tree = ast.parse(_python_view(source))
    except SyntaxError as problem:
        raise SourceError(f"{where}: not valid Python ({problem.msg}, line {problem.lineno})") from None
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    regions: list[_Region] = []
    start: int | None = None
    for index, line in enumerate(source.splitlines()):
        marker = line.strip()
        if marker == BEGIN:
            if start is not None:
                raise SourceError(f"{where}: nested {BEGIN} at line {index + 1}")
            start = index
        elif marker == END:
            if start is None:
                raise SourceError(f"{where}: {END} without {BEGIN} at line {index + 1}")
            opening = source.splitlines()[start]
            inside = any(f.lineno <= start < (f.end_lineno or f.lineno) for f in functions)
            regions.append(_Region(start, index, opening[: len(opening) - len(opening.lstrip())], inside))
            start = None
    if start is not None:
        raise SourceError(f"{where}: {BEGIN} at line {start + 1} is never closed")
    return regions, tree


def _names(tree: ast.AST) -> set[tuple[str, int]]:
    """Every name a piece of code mentions, with its 1-based line."""
    return {(node.id, node.lineno) for node in ast.walk(tree) if isinstance(node, ast.Name)}


def inline_helpers(sources: Sequence[str]) -> list[str]:
    """Move helpers defined in module-level solution regions into the solution regions that use them.

    Each function-level region gets, right after its ``### BEGIN SOLUTION`` line, a nested copy of
    every helper it calls (directly or through another helper), in the order the helpers were
    defined. The module-level regions are removed.

    Args:
        sources: the code of each cell, in notebook order.

    Returns:
        The new code of each cell, in the same order; ``""`` for a cell that held nothing but helpers.

    Raises:
        SourceError: if a module-level region holds anything but function definitions, a helper is
            used outside a solution region, or a region is malformed.
    """
    parsed = [solution_regions(source, f"cell {number}") for number, source in enumerate(sources)]
    helpers: dict[str, str] = {}
    for source, (regions, _) in zip(sources, parsed, strict=True):
        lines = source.splitlines()
        for region in (r for r in regions if not r.in_function):
            block = "\n".join(lines[region.begin + 1 : region.end])
            body = ast.parse(block).body
            for node in body:
                if not isinstance(node, ast.FunctionDef):
                    statement = block.splitlines()[node.lineno - 1].strip()
                    raise SourceError(f"a module-level solution region may only define functions, not {statement!r}")
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                helpers[node.name] = "\n".join(block.splitlines()[first - 1 : node.end_lineno])
    uses = {name: {n for n, _ in _names(ast.parse(text))} & helpers.keys() - {name} for name, text in helpers.items()}

    def needed(direct: set[str]) -> list[str]:
        found, queue = set(direct), list(direct)
        while queue:
            for name in uses[queue.pop()] - found:
                found.add(name)
                queue.append(name)
        return [name for name in helpers if name in found]

    result = []
    for number, (source, (regions, tree)) in enumerate(zip(sources, parsed, strict=True)):
        lines = source.splitlines()
        names = _names(tree)
        for name, line in names:
            if name in helpers and not any(region.holds(line) for region in regions):
                raise SourceError(f"cell {number} uses the helper {name} outside a solution region (line {line})")
        out: list[str] = []
        cursor = 0
        for region in regions:
            out += lines[cursor : region.begin]
            cursor = region.end + 1
            if not region.in_function:
                continue
            direct = {name for name, line in names if name in helpers and region.holds(line)}
            out.append(lines[region.begin])
            for helper in needed(direct):
                out += textwrap.indent(helpers[helper], region.indent).splitlines() + [""]
            out += lines[region.begin + 1 : region.end + 1]
        out += lines[cursor:]
        result.append("\n".join(out).strip("\n"))
    return result
