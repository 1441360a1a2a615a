"""Exports to course platforms: nbgrader, otter-grader and Gradescope.

Each platform module offers ``export(dest: Path, *, ...) -> list[Path]`` (keyword-only options),
called by ``wsgrade export <platform> DEST``. The rule they share: a platform may run the
student's notebook for the student's benefit, but the *verdict* always comes from our sandboxed
grader (:func:`autograder.grading.grade_prepared`), never from code running in the student's
kernel, where any earlier cell can replace a checking function.
"""

from __future__ import annotations

__all__ = ["PLATFORMS"]

#: platform name -> module (imported lazily by the CLI: each needs its own optional dependencies)
PLATFORMS = {
    "nbgrader": "autograder.integrations.nbgrader",
    "otter": "autograder.integrations.otter",
    "gradescope": "autograder.integrations.gradescope",
}
