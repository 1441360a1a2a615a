"""In this repository: the grader's verdict and feedback helpers themselves.

``wsgrade export student`` writes a standalone copy of their source in the kit instead
(:func:`autograder.student_kit.grader_helpers_source`).
"""

from autograder.checks import ACCEPTS_FIRST, UNCHANGED_FIRST, _check_value, check_array, check_exact, check_float
from autograder.feedback import CheckFailed, Hint, describe_value

__all__ = [
    "ACCEPTS_FIRST",
    "UNCHANGED_FIRST",
    "CheckFailed",
    "Hint",
    "_check_value",
    "check_array",
    "check_exact",
    "check_float",
    "describe_value",
]
