"""The reference solution as an importable module, built from the single source.

Only the definition cells run (see :func:`autograder.source.module_text`); line numbers match
``solutions/weight_sharing.py`` so tracebacks and coverage point at the real file.
"""

from __future__ import annotations

import functools
import hashlib
from types import ModuleType

from autograder.source import SOLUTION_SOURCE, module_text
from autograder.submission import PreparedSubmission

__all__ = ["load_reference", "reference_submission"]


@functools.cache
def load_reference() -> ModuleType:
    """Return the reference module (built once per process).

    Returns:
        A module with the 16 contract functions.

    Raises:
        FileNotFoundError: if the grader runs without its ``solutions/`` folder.
    """
    if not SOLUTION_SOURCE.exists():
        raise FileNotFoundError(
            f"the reference solution {SOLUTION_SOURCE} is missing; run the grader from a checkout or "
            "bundle that includes the solutions/ folder"
        )
    module = ModuleType("weight_sharing_reference", "The reference solution (never shown to students).")
    module.__file__ = str(SOLUTION_SOURCE)
    code = compile(module_text(SOLUTION_SOURCE.read_text(), stubs=False), str(SOLUTION_SOURCE), "exec")
    exec(code, module.__dict__)
    return module


def reference_submission() -> PreparedSubmission:
    """The reference as a submission, to run in a sandbox like a student's code (the speed tests'
    twin, the recording of the hidden tests' inputs).

    Returns:
        A one-module submission named ``<reference>``.
    """
    code = module_text(SOLUTION_SOURCE.read_text(), stubs=False)
    return PreparedSubmission(
        "module", (code,), "weight_sharing.py", "<reference>", hashlib.sha256(code.encode()).hexdigest()
    )
