"""Mutants of Part 6 (see tests/corpus/__init__.py)."""

from tests.corpus import Mutant

MUTANTS: list[Mutant] = []
