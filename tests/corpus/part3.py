"""Mutants of Part 3 (see tests/corpus/__init__.py)."""

from tests.corpus import Mutant

MUTANTS: list[Mutant] = []
