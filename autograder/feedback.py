"""Feedback a student can act on: formatting inputs and arrays, and the failure the tests raise.

A failing hidden test raises :class:`CheckFailed` whose message is the whole story for the student:
which call, on which (shrunk) input, what was expected, what came back, and, where a classic
mistake is recognised, a hint that names it. Large inputs and expected arrays are summarised,
never printed, and the hidden tests' source code never appears.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autograder.sandbox.wire import Unsupported

__all__ = ["SHOW_LIMIT", "CheckFailed", "Hint", "describe_value", "format_array"]

#: Arrays with at most this many elements are printed in full in feedback.
SHOW_LIMIT = 64


class CheckFailed(AssertionError):
    """A hidden test's verdict on the student's code, with feedback.

    Args:
        message: what went wrong, for the student.
        hint: a plain-words hint naming the recognised mistake, if any.
        mistake: a short id of the recognised mistake (for the class report), if any.
        fraction: the share of the test's points still earned (partial credit, e.g. a speed band).
        gated: the property the test checks held (it rejected bad input, it left its inputs alone),
            but the test counts only when the function's answer is right too, and it was not.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        mistake: str | None = None,
        fraction: float = 0.0,
        gated: bool = False,
    ) -> None:
        self.message = message
        self.hint = hint
        self.mistake = mistake
        self.fraction = min(max(fraction, 0.0), 1.0)
        self.gated = gated
        super().__init__(self.feedback)

    @property
    def feedback(self) -> str:
        """The message with its hint."""
        return self.message + (f"\nHint: {self.hint}" if self.hint else "")


class NotImplementedYet(BaseException):
    """Ends a hidden test at once: the student's function is not implemented yet.

    A ``BaseException``, so that hypothesis passes it straight through instead of shrinking the
    input (which for a stub means hundreds more calls per test and no better message): a test that
    met one ``NotImplementedError`` fails whichever example came first.

    Args:
        verdict: the test's verdict (mistake ``not-implemented``).
    """

    def __init__(self, verdict: CheckFailed) -> None:
        super().__init__(verdict.message)
        self.verdict = verdict


@dataclass(frozen=True)
class Hint:
    """A classic mistake the grader can recognise.

    Attributes:
        mistake: a short id, e.g. ``"flipped-kernel"``.
        text: the hint shown to the student.
        wrong_answer: replays the mistake on the failing input: computes the value a submission
            with this mistake returns (an array, NaN where the mistake leaves an entry undetermined,
            or a plain value). The hint is shown only when that value is the student's (never for
            a matching shape alone); called only after a test has failed.
    """

    mistake: str
    text: str
    wrong_answer: Callable[[], Any]


def format_array(array: np.ndarray, *, limit: int = SHOW_LIMIT) -> str:
    """Print a small array in full, a large one as its shape and dtype.

    Args:
        array: the array.
        limit: the most elements printed.

    Returns:
        The text.
    """
    if array.size <= limit:
        body = np.array2string(array, precision=4, suppress_small=True, separator=", ", max_line_width=100)
        body = "\n".join(line for line in body.splitlines() if line.strip())  # no blank lines between blocks
        return f"{body}  (shape {array.shape}, {array.dtype})"
    return f"<array of shape {array.shape}, {array.dtype}: too large to show>"


def describe_value(value: Any) -> str:
    """Describe any argument or returned value briefly.

    Args:
        value: a value.

    Returns:
        The text.
    """
    if isinstance(value, np.ndarray):
        return format_array(value)
    if isinstance(value, Unsupported):
        return value.description
    if isinstance(value, tuple | list) and value and any(isinstance(v, np.ndarray) for v in value):
        inner = ", ".join(describe_value(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + " ..."


def first_difference(got: np.ndarray, expected: np.ndarray, tolerance: np.ndarray) -> str:
    """Say where two same-shaped arrays differ most, and how many entries are off.

    Args:
        got: the student's array.
        expected: the expected array.
        tolerance: the allowed absolute error per entry.

    Returns:
        A sentence.
    """
    error = np.abs(got.astype(np.float64) - expected)
    bad = ~(error <= tolerance)
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return (
        f"{int(bad.sum())} of {bad.size} entries are wrong; the first is at index {index}: "
        f"expected {expected[index]:.6g}, got {got[index]:.6g}"
    )


def matching_hint(hints: Sequence[Hint], got: Any, matches: Callable[[Any, Any], bool]) -> Hint | None:
    """Return the first hint whose wrong answer equals what the student returned.

    Args:
        hints: candidate mistakes, most specific first.
        got: the student's value.
        matches: compares ``got`` with a wrong answer.

    Returns:
        The matching hint, or None.
    """
    for hint in hints:
        try:
            wrong = hint.wrong_answer()
            if matches(got, wrong):
                return hint
        except Exception:  # a mistake that cannot be replayed on this input is simply not this one
            continue
    return None
