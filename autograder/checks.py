"""How the hidden tests talk to a submission and judge what comes back.

``sub.conv2d(image, kernel)`` (a :class:`SubmissionProxy` attribute) calls the student's function
in the sandbox and returns an :class:`Outcome`, or raises :class:`CheckFailed` with a message for
the student when the call raised, crashed, hung or does not exist. The ``check_*`` functions then
compare the outcome with the expected value computed here, from the reference, in the grader's
process, and raise :class:`CheckFailed` with the counterexample, expected vs got, and a hint.

Tolerances are scaled to the magnitude of the terms summed (``scale``), not to the output value, so
a correct float32, FFT or loop implementation passes while a wrong one fails.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from autograder.feedback import (
    CheckFailed,
    Hint,
    NotImplementedYet,
    describe_value,
    first_difference,
    format_array,
    matching_hint,
)
from autograder.sandbox.client import (
    ArrayView,
    CallResult,
    CallTimeout,
    FunctionMissing,
    GradingBudgetExceeded,
    Layer,
    Sandbox,
    SandboxError,
    StudentRaised,
    SubmissionDoesNotLoad,
    WorkerCrashed,
)
from autograder.tasks import tasks_for_function

__all__ = [
    "ACCEPTS_FIRST",
    "FLOAT32_RTOL",
    "FLOAT64_RTOL",
    "CheckFailed",
    "Hint",
    "Outcome",
    "SandboxError",
    "StudentFunction",
    "SubmissionProxy",
    "check_accepts",
    "check_array",
    "check_exact",
    "check_float",
    "check_matches_reference",
    "check_no_mutation",
    "describe_call",
    "describe_layer",
    "describe_layout",
    "expect_error",
    "plain",
    "reference_call",
    "reproduces",
]

#: Allowed error relative to the sum of the magnitudes of the terms, by the precision involved.
FLOAT64_RTOL = 1e-9
FLOAT32_RTOL = 2e-4
_CRASHES_BEFORE_GIVING_UP = 3
_RESULT = object()  # check_exact's default: check the call's return value


def plain(value: Any) -> Any:
    """The value the grader computes with: an :class:`ArrayView` becomes its array."""
    return value.value if isinstance(value, ArrayView) else value


def describe_layout(array: np.ndarray) -> str:
    """Say how an array is laid out in memory, when it is not plain C order (for feedback).

    Args:
        array: an array as the student's function received it.

    Returns:
        e.g. ``"Fortran-ordered (column-major, as np.asfortranarray gives)"``; empty for C order.
    """
    if any(stride < 0 for stride in array.strides):
        return "a view with negative strides, as x[::-1] gives"
    if array.flags.c_contiguous:
        return ""
    if array.flags.f_contiguous:
        return "Fortran-ordered (column-major, as np.asfortranarray gives)"
    return "a non-contiguous view, as x[..., ::2] or x.swapaxes(-1, -2) gives"


def _describe_argument(value: Any) -> str:
    if isinstance(value, ArrayView):
        layout = describe_layout(value.value)
        return describe_value(value.value) + (f" ({layout})" if layout else "")
    if isinstance(value, Layer):
        return describe_layer(value.spec)
    return describe_value(value)


def describe_layer(spec: dict[str, Any]) -> str:
    """Describe a layer of the shift tests in words.

    Args:
        spec: the layer's description.

    Returns:
        e.g. ``"a circular convolution with a 3x3 kernel"``.
    """
    kind = spec["kind"]
    if kind == "circular_conv":
        kh, kw = spec["weight"].shape[2:]
        return f"a circular convolution with a {kh}x{kw} kernel" + (
            " and a bias" if spec.get("bias") is not None else ""
        )
    if kind == "compose":
        return "the composition of " + ", then ".join(describe_layer(part) for part in spec["layers"])
    return {
        "relu": "ReLU (elementwise)",
        "square": "x**2 (elementwise)",
        "scale": "multiplication by a constant",
        "position_bias": "adding a bias that differs at each position",
        "untied_1x1": "a 1x1 locally-connected layer (different weights at each position)",
        "subsample_upsample": (
            f"subsampling with stride {spec.get('stride')} (x[..., ::{spec.get('stride')}, ::{spec.get('stride')}]), "
            "then repeating each pixel to the input's size"
        ),
        "crop": f"cropping {spec.get('by')} row(s) and column(s)",
        "zero_pad_conv": "a convolution with zero padding (not circular)",
        "global_avg_pool": "global average pooling (the mean over H and W: the output is 1x1)",
    }.get(kind, kind)


@dataclass(frozen=True)
class Outcome:
    """A call that returned.

    Attributes:
        function: the contract function.
        args: the positional arguments as sent.
        kwargs: the keyword arguments as sent.
        argnames: the contract's parameter names.
        result: what came back.
        reference: the reference's version of the function (for :func:`check_matches_reference`).
    """

    function: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    argnames: tuple[str, ...]
    result: CallResult
    reference: Callable[..., Any] | None = None

    @property
    def value(self) -> Any:
        """The returned value."""
        return self.result.value

    def describe(self) -> str:
        """The call with its (small) inputs printed, for feedback."""
        return describe_call(self.function, self.args, self.kwargs, self.argnames)

    @property
    def float32(self) -> bool:
        """Whether float32 is involved (an input or the output), which loosens tolerances."""
        values = [plain(v) for v in (*self.args, *self.kwargs.values())]
        arrays = [v for v in values if isinstance(v, np.ndarray)]
        value = self.value if isinstance(self.value, tuple) else (self.value,)
        arrays += [v for v in value if isinstance(v, np.ndarray)]
        return any(a.dtype == np.float32 for a in arrays)

    def fail(self, problem: str, *, hint: Hint | None = None) -> CheckFailed:
        """Build the failure for this call: the call, the problem, the hint and what it printed."""
        text = f"{self.describe()}\n{problem}"
        if self.result.output.strip():
            text += f"\nYour function printed:\n{self.result.output.rstrip()}"
        return CheckFailed(text, hint=hint.text if hint else None, mistake=hint.mistake if hint else None)


def describe_call(function: str, args: tuple[Any, ...], kwargs: dict[str, Any], argnames: Sequence[str]) -> str:
    """Describe a call and its inputs.

    Args:
        function: the function name.
        args: positional arguments.
        kwargs: keyword arguments.
        argnames: parameter names for the positional ones.

    Returns:
        Multi-line text.
    """
    names = list(argnames[: len(args)]) + list(kwargs)
    values = list(args) + list(kwargs.values())
    signature = ", ".join(names[: len(args)] + [f"{k}={_short(v)}" for k, v in kwargs.items()])
    lines = [f"Called {function}({signature}) with"]
    for name, value in zip(names, values, strict=True):
        if name in kwargs and not isinstance(plain(value), np.ndarray):
            continue
        lines.append(f"  {name} = {_describe_argument(value)}")
    return "\n".join(lines) if len(lines) > 1 else f"Called {function}({signature})"


def _short(value: Any) -> str:
    value = plain(value)
    return "<array>" if isinstance(value, np.ndarray) else repr(value)


class StudentFunction:
    """One contract function of the submission, callable from the hidden tests."""

    def __init__(
        self, proxy: SubmissionProxy, name: str, argnames: tuple[str, ...], reference: Callable[..., Any] | None = None
    ) -> None:
        self.proxy = proxy
        self.name = name
        self.argnames = argnames
        self.reference = reference

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CallResult:
        stuck = self.proxy.stuck.get(self.name)
        if stuck is not None:
            raise CheckFailed(stuck)
        try:
            return self.proxy.sandbox.call(self.name, args, kwargs, argnames=self.argnames)
        except (CallTimeout, WorkerCrashed) as problem:
            text = f"{describe_call(self.name, args, kwargs, self.argnames)}\n{problem}"
            crashes = self.proxy.crashes[self.name] = self.proxy.crashes.get(self.name, 0) + 1
            if isinstance(problem, CallTimeout) or crashes >= _CRASHES_BEFORE_GIVING_UP:
                self.proxy.stuck[self.name] = text  # the rest of this test is not retried
            raise CheckFailed(text, mistake="timeout" if isinstance(problem, CallTimeout) else "crash") from None
        except FunctionMissing:
            reason = self.proxy.missing.get(self.name)
            raise CheckFailed(
                reason
                or f"Your code defines no function named {self.name}. Keep the names of the starter file: the "
                "grader calls each function by its name.",
                mistake="missing-function",
            ) from None
        except (SubmissionDoesNotLoad, GradingBudgetExceeded) as problem:
            raise CheckFailed(str(problem)) from None

    def __call__(self, *args: Any, **kwargs: Any) -> Outcome:
        """Call the student's function; raise :class:`CheckFailed` unless it returns."""
        try:
            result = self._call(args, kwargs)
        except StudentRaised as raised:
            raise _raised_failure(self.name, args, kwargs, self.argnames, raised) from None
        return Outcome(self.name, args, dict(kwargs), self.argnames, result, self.reference)

    def attempt(self, *args: Any, **kwargs: Any) -> Outcome | StudentRaised:
        """Call the student's function; return the exception it raised instead of failing."""
        try:
            result = self._call(args, kwargs)
        except StudentRaised as raised:
            return raised
        return Outcome(self.name, args, dict(kwargs), self.argnames, result, self.reference)


def _raised_failure(
    function: str, args: tuple[Any, ...], kwargs: dict[str, Any], argnames: Sequence[str], raised: StudentRaised
) -> CheckFailed | NotImplementedYet:
    text = f"{describe_call(function, args, kwargs, argnames)}\nit raised {raised.type_name}: {raised.message}"
    if raised.traceback:
        text += f"\n{raised.traceback.rstrip()}"
    if raised.output.strip():
        text += f"\nYour function printed:\n{raised.output.rstrip()}"
    if raised.is_a("NotImplementedError"):
        task = tasks_for_function(function)
        label = f"Task {task[0].id}" if task else function
        return NotImplementedYet(
            CheckFailed(f"{function} is not implemented yet ({label}).", mistake="not-implemented")
        )
    return CheckFailed(text, mistake="raised")


class SubmissionProxy:
    """The submission as the hidden tests see it: ``sub.conv2d(...)`` calls into the sandbox.

    Args:
        sandbox: the sandbox running the submission.
        reference: the reference module, whose signatures give the contract's parameter names.
        missing: why a function is missing, by name (a notebook cell that raised defining it).
    """

    def __init__(self, sandbox: Sandbox, reference: ModuleType, *, missing: dict[str, str] | None = None) -> None:
        self.sandbox = sandbox
        self.reference = reference
        self.missing = missing or {}
        self.stuck: dict[str, str] = {}
        self.crashes: dict[str, int] = {}

    def begin_test(self) -> None:
        """Forget per-test state (which functions hung or crashed in the previous test)."""
        self.stuck.clear()
        self.crashes.clear()

    def replay_stopped(self) -> None:
        """The replay of this test's recorded inputs stopped, and hypothesis runs it from its first
        example (see :mod:`autograder.replay`). Forget a crash counted in the replay: hypothesis meets
        it again and counts it then, as without replay. What hung stays stuck: running it again
        would only cost the student a second time-out, with the same message."""
        self.crashes.clear()

    def __getattr__(self, name: str) -> StudentFunction:
        if name.startswith("_"):
            raise AttributeError(name)
        reference = getattr(self.reference, name)
        argnames = tuple(inspect.signature(reference).parameters)
        return StudentFunction(self, name, argnames, reference)


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------


def _tolerance(scale: np.ndarray | None, expected: np.ndarray, float32: bool) -> np.ndarray:
    rtol = FLOAT32_RTOL if float32 else FLOAT64_RTOL
    magnitude = np.abs(expected) if scale is None else np.asarray(scale, dtype=np.float64)
    floor = 0.01 * float(magnitude.max()) if magnitude.size else 0.0
    return rtol * (magnitude + floor) + 1e-12


def check_array(
    outcome: Outcome,
    expected: np.ndarray,
    *,
    value: Any = None,
    what: str = "the result",
    scale: np.ndarray | None = None,
    hints: Sequence[Hint] = (),
    confirm: Callable[[Hint], bool] | None = None,
) -> None:
    """Check that a returned array equals ``expected`` up to scaled tolerance.

    Args:
        outcome: the call.
        expected: the reference's answer, computed in float64.
        value: the array to check (default: the call's return value).
        what: how the feedback names it (``"dweight"``, ``"the result"``).
        scale: per entry, the sum of the magnitudes of the terms that make it up (default:
            ``|expected|``); the tolerance is proportional to it.
        hints: classic mistakes to recognise when the check fails.
        confirm: asked about a hint whose mistake reproduced the student's values, before it is
            shown: True when the same mistake also explains the student's answer on a second,
            generic input (a small shrunk input can match a mistake by coincidence).

    Raises:
        CheckFailed: with expected vs got and, where recognised, a hint.
    """
    got = outcome.value if value is None else value
    if not isinstance(got, np.ndarray):
        raise outcome.fail(f"{what} should be a NumPy array of shape {expected.shape}; got {describe_value(got)}")
    if got.dtype.kind != "f":
        raise outcome.fail(f"{what} should have a floating dtype (float64 or float32); got dtype {got.dtype}")
    tolerance = _tolerance(scale, expected, outcome.float32)
    if got.shape != expected.shape:
        # The expected array's tolerances do not line up with another shape: use the loosest one.
        loosest = float(tolerance.max()) if tolerance.size else 1e-12
        hint = matching_hint(hints, got, lambda g, wrong: reproduces(g, wrong, loosest))
        raise outcome.fail(f"{what} should have shape {expected.shape}; got shape {got.shape}", hint=hint)
    error = np.abs(got.astype(np.float64) - expected)
    if np.all(error <= tolerance):
        return
    hint = matching_hint(hints, got, lambda g, wrong: reproduces(g, wrong, tolerance))
    if hint is not None and confirm is not None and not _confirmed(confirm, hint):
        hint = None  # right or silent: a coincidence on this input is no diagnosis
    problem = (
        f"expected {what}: {format_array(expected)}\n"
        f"got:      {format_array(got)}\n"
        f"{first_difference(got, expected, tolerance)}"
    )
    raise outcome.fail(problem, hint=hint)


def _confirmed(confirm: Callable[[Hint], bool], hint: Hint) -> bool:
    try:
        return bool(confirm(hint))
    except (Exception, NotImplementedYet):  # the second call failed: nothing is confirmed
        return False


def reproduces(got: np.ndarray, wrong: Any, tolerance: float | np.ndarray) -> bool:
    """Whether a replayed mistake gives the student's values (not merely their shape).

    A hint names a mistake only when replaying it on the same input gives what the student returned:
    the same shape and every entry within ``tolerance``. NaN entries of the replay are entries the
    mistake does not determine (a window that runs off the image reads whatever the student's code
    reads there); they are skipped, but at least one entry must be determined, unless the replay is
    empty like the student's array.

    Args:
        got: the student's array.
        wrong: the replayed mistake's answer (anything other than an array never matches).
        tolerance: the allowed absolute error, a number or one per entry of ``got``.

    Returns:
        True when the mistake explains the student's array.
    """
    if not isinstance(wrong, np.ndarray) or wrong.shape != got.shape or wrong.dtype.kind not in "biuf":
        return False
    wrong = wrong.astype(np.float64)
    known = ~np.isnan(wrong)
    if got.size and not known.any():
        return False
    close = np.abs(got.astype(np.float64) - wrong) <= tolerance
    return bool(np.all(close | ~known))


def check_exact(
    outcome: Outcome, expected: Any, *, value: Any = _RESULT, what: str = "the result", hints: Sequence[Hint] = ()
) -> None:
    """Check a returned int, bool, tuple or list exactly, including its type.

    ``True`` is not accepted for ``1`` (nor a float for an int); NumPy integer and bool scalars
    count as ints and bools.

    Args:
        outcome: the call.
        expected: the expected plain value.
        value: the value to check (default: the call's return value; pass ``None`` to check a part that
            must be ``None``).
        what: how the feedback names it.
        hints: classic mistakes; a hint's ``wrong_answer`` returns a plain value.

    Raises:
        CheckFailed: with expected vs got and, where recognised, a hint.
        TypeError: if ``expected`` is not plain data (a bug in the test, not the submission).
    """
    if not _is_plain(expected):
        raise TypeError(f"check_exact compares ints, bools, strings, floats, None and tuples/lists, not {expected!r}")
    got = outcome.value if value is _RESULT else value
    if _same_plain(got, expected):
        return
    hint = matching_hint(hints, got, _same_plain)
    raise outcome.fail(f"expected {what}: {expected!r}\ngot: {describe_value(got)}", hint=hint)


def _is_plain(value: Any) -> bool:
    if value is None or type(value) in (bool, int, str, float):
        return True
    return isinstance(value, tuple | list) and all(_is_plain(item) for item in value)


def _same_plain(got: Any, expected: Any) -> bool:
    """Exact equality of plain data, types included (``True`` is not ``1``; ``1.0`` is not ``1``)."""
    if expected is None:
        return got is None
    if type(expected) in (bool, int, str, float):
        return type(got) is type(expected) and got == expected
    if isinstance(expected, tuple | list):
        return (
            type(got) is type(expected)
            and len(got) == len(expected)
            and all(_same_plain(g, e) for g, e in zip(got, expected, strict=True))
        )
    return False


def check_float(outcome: Outcome, expected: float, *, tolerance: float, what: str = "the result") -> None:
    """Check a returned Python float (NumPy float scalars accepted) within an absolute tolerance.

    Raises:
        CheckFailed: when it is not a float or is too far off.
    """
    got = outcome.value
    if type(got) is not float:
        raise outcome.fail(f"{what} should be a float; got {describe_value(got)}")
    if not abs(got - expected) <= tolerance:
        raise outcome.fail(f"expected {what}: {expected:.6g}\ngot: {got:.6g} (allowed error {tolerance:.1g})")


#: Why a no-mutation test fails when the inputs were left alone but the answer is wrong.
UNCHANGED_FIRST = (
    "{function} left its input arrays unchanged, as it should. This test counts only when {function} also "
    "returns the right answer, and here it did not:"
)


def check_no_mutation(outcome: Outcome) -> None:
    """Fail when the call modified any of its array arguments in place, or returned a wrong answer.

    A function earns a no-mutation test only when it is also right on that input: returning
    garbage without touching the inputs is not worth points.

    Raises:
        CheckFailed: naming the argument, or as :func:`check_matches_reference`.
    """
    if outcome.result.mutated:
        names = ", ".join(f"`{name}`" for name in outcome.result.mutated)
        raise CheckFailed(
            f"{outcome.function} modified its {names} argument in place. The caller's arrays must not change: "
            "work on a copy (e.g. np.pad or x.copy()) or build a new output array.",
            mistake="mutates-input",
        )
    try:
        check_matches_reference(outcome)
    except CheckFailed as failed:  # (NotImplementedYet is no CheckFailed: it passes straight through)
        message = f"{UNCHANGED_FIRST.format(function=outcome.function)}\n{failed.message}"
        raise CheckFailed(message, hint=failed.hint, mistake=failed.mistake, gated=True) from None


def check_matches_reference(outcome: Outcome) -> None:
    """Check the result against the reference's on the same arguments, whatever its type.

    Arrays are compared with a tolerance relative to their magnitude, floats likewise, tuples part
    by part, and plain values exactly.

    Raises:
        CheckFailed: with expected vs got.
        ValueError: if the outcome has no reference function (a bug in the test).
    """
    if outcome.reference is None:
        raise ValueError(f"no reference function for {outcome.function}")
    expected = reference_call(outcome.reference, *outcome.args, **outcome.kwargs)
    _check_value(outcome, expected, outcome.value, "the result")


def _check_value(outcome: Outcome, expected: Any, got: Any, what: str) -> None:
    if isinstance(expected, np.ndarray):
        check_array(outcome, expected.astype(np.float64), value=got, what=what)
    elif isinstance(expected, float) and not isinstance(expected, bool):
        if type(got) is not float or not abs(got - expected) <= 1e-6 * max(1.0, abs(expected)):
            raise outcome.fail(f"expected {what}: {expected:.6g}\ngot: {describe_value(got)}")
    elif isinstance(expected, tuple) and any(isinstance(part, np.ndarray) for part in expected):
        if type(got) is not tuple or len(got) != len(expected):
            raise outcome.fail(f"{what} should be a tuple of {len(expected)} values; got {describe_value(got)}")
        for index, (want, have) in enumerate(zip(expected, got, strict=True)):
            _check_value(outcome, want, have, f"part {index} of the result")
    else:
        check_exact(outcome, expected, value=got, what=what)


#: Why a rejection test fails when the function's answer on a valid input is wrong (see check_accepts).
ACCEPTS_FIRST = (
    "This test checks that {function} rejects invalid input. It counts only when {function} also returns the "
    "right answer for a valid input, and here it did not:"
)


def check_accepts(function: StudentFunction, *args: Any, **kwargs: Any) -> None:
    """Check that a valid call returns the reference's answer; the gate of every rejection test.

    A function that raises ValueError for everything would otherwise pass every "rejects bad input"
    test. Each of those tests calls this first, with a valid input close to the invalid ones (a
    kernel that just fits, the right number of channels), so rejection points go only to a function
    that computes and refuses.

    Args:
        function: the student's function.
        args: positional arguments of a valid call.
        kwargs: keyword arguments of a valid call.

    Raises:
        CheckFailed: the call's own failure, prefixed with :data:`ACCEPTS_FIRST`.
    """
    try:
        check_matches_reference(function(*args, **kwargs))
    except CheckFailed as failed:  # (NotImplementedYet is no CheckFailed: it passes straight through)
        message = f"{ACCEPTS_FIRST.format(function=function.name)}\n{failed.message}"
        raise CheckFailed(message, hint=failed.hint, mistake=failed.mistake, gated=True) from None


def expect_error(function: StudentFunction, *args: Any, because: str, error: str = "ValueError", **kwargs: Any) -> None:
    """Check that a call raises ``error`` (or a subclass).

    Args:
        function: the student's function.
        args: positional arguments.
        because: why the call is invalid, in words (shown on failure).
        error: the built-in exception's name.
        kwargs: keyword arguments.

    Raises:
        CheckFailed: when it returns, or raises something else.
    """
    outcome = function.attempt(*args, **kwargs)
    call = describe_call(function.name, args, kwargs, function.argnames)
    if isinstance(outcome, StudentRaised):
        if outcome.is_a(error):
            return
        if outcome.is_a("NotImplementedError"):
            raise _raised_failure(function.name, args, kwargs, function.argnames, outcome)
        raise CheckFailed(
            f"{call}\nexpected {error} because {because}; it raised {outcome.type_name}: {outcome.message}",
            mistake="wrong-exception",
        )
    raise CheckFailed(
        f"{call}\nexpected {error} because {because}; it returned {describe_value(outcome.value)}",
        hint=f"check the input and raise {error} with a message that names the problem",
        mistake="missing-validation",
    )


def reference_call(reference: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a reference function on the grader's copies of the arguments (views as arrays)."""
    return reference(*[plain(a) for a in args], **{k: plain(v) for k, v in kwargs.items()})
