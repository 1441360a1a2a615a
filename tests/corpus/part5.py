"""Mutants of Part 5 (see tests/corpus/__init__.py)."""

from tests.corpus import Mutant

MUTANTS: list[Mutant] = []
