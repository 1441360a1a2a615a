"""A corpus of realistic buggy submissions, each the reference with one mistake.

Each mutant names the function it breaks, the exact text it replaces in the reference module, and
(where the reference calls the broken code from elsewhere) the other functions that legitimately
lose points too. ``tests/test_corpus.py`` grades every mutant and checks that it loses points on
what it breaks, keeps full marks everywhere else, and, where ``mistake`` is given, that the
grader's hint recognised it. One file per part keeps the lists short.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from autograder.source import SOLUTION_SOURCE, module_text

__all__ = [
    "Mutant",
    "all_mutants",
    "function_lines",
    "mutant_source",
    "reference_source",
    "reference_with",
    "with_bodies",
]


@dataclass(frozen=True)
class Mutant:
    """One buggy submission.

    Attributes:
        name: a short id, unique in the corpus.
        function: the contract function whose tests must lose points.
        old: text that occurs exactly once in the function ``within``.
        new: what replaces it.
        also_breaks: other contract functions that use the broken code in the reference.
        mistake: the hint id the grader should report on ``function``'s failing tests, if any.
    """

    name: str
    function: str
    old: str
    new: str
    also_breaks: tuple[str, ...] = ()
    mistake: str | None = None
    within: str | None = None

    @property
    def location(self) -> str:
        """The reference function the change is made in (``function`` unless ``within`` says otherwise)."""
        return self.within or self.function


def reference_source() -> str:
    """The reference as a plain module (the definition cells only)."""
    return module_text(SOLUTION_SOURCE.read_text(), stubs=False)


def function_lines(source: str, function: str) -> tuple[int, int]:
    """Where a top-level function sits in ``source``: 0-based first line and the line after its last.

    Raises:
        ValueError: if ``source`` defines no such function.
    """
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return node.lineno - 1, node.end_lineno or node.lineno
    raise ValueError(f"no function {function}")


def reference_with(function: str, code: str) -> str:
    """The reference with one whole function replaced by ``code`` (an attack, a slow variant, ...)."""
    source = reference_source()
    lines = source.splitlines(keepends=True)
    start, end = function_lines(source, function)
    return "".join(lines[:start]) + code + "".join(lines[end:])


def with_bodies(bodies: dict[str, str]) -> str:
    """The reference with the bodies of some functions replaced (their signatures and docstrings kept).

    Args:
        bodies: function name -> its new body, indented as a function body (``"    return 0\\n"``).

    Returns:
        The module's source.

    Raises:
        ValueError: if the reference has no function of one of those names.
    """
    source = reference_source()
    lines = source.splitlines(keepends=True)
    nodes = {node.name: node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
    missing = sorted(set(bodies) - set(nodes))
    if missing:
        raise ValueError(f"the reference has no functions {missing}")
    for name in sorted(bodies, key=lambda name: -nodes[name].lineno):  # bottom up: earlier lines keep their numbers
        node = nodes[name]
        first = node.body[0]
        has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
        start = (first.end_lineno or first.lineno) if has_docstring else first.lineno - 1
        lines[start : node.end_lineno] = [bodies[name]]
    return "".join(lines)


def mutant_source(mutant: Mutant) -> str:
    """The reference with the mutant's one change applied inside ``mutant.location``.

    Raises:
        ValueError: if ``old`` does not occur exactly once there (the corpus has drifted from the reference).
    """
    source = reference_source()
    lines = source.splitlines(keepends=True)
    try:
        start, end = function_lines(source, mutant.location)
    except ValueError:
        raise ValueError(f"mutant {mutant.name}: the reference has no function {mutant.location}") from None
    segment = "".join(lines[start:end])
    count = segment.count(mutant.old)
    if count != 1:
        raise ValueError(
            f"mutant {mutant.name}: the text to replace occurs {count} times in {mutant.location}, not once"
        )
    return "".join(lines[:start]) + segment.replace(mutant.old, mutant.new) + "".join(lines[end:])


def all_mutants() -> list[Mutant]:
    """Every mutant of every part."""
    from tests.corpus import part1, part2, part3, part4, part5, part6

    mutants = [*part1.MUTANTS, *part2.MUTANTS, *part3.MUTANTS, *part4.MUTANTS, *part5.MUTANTS, *part6.MUTANTS]
    names = [m.name for m in mutants]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate mutant names: {sorted(duplicates)}")
    return mutants
