"""The test suite (``./dev.sh test``: ``pytest -n 2 --dist loadgroup``).

Expensive fixtures (a grading, an export run through nbgrader or otter, the student kit) are
session-scoped even when one module uses them: xdist interleaves other modules' tests with a
module's own, and pytest tears a module fixture down whenever the next test is from another
module, so a module scope made the nbgrader course twice per run (67 s each).
"""
