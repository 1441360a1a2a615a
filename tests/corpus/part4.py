"""Mutants of Part 4 (see tests/corpus/__init__.py)."""

from tests.corpus import Mutant

MUTANTS: list[Mutant] = []
