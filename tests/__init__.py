"""The test suite (``./dev.sh test``: ``pytest -n 2 --dist loadfile``).

Each module runs on one xdist worker, so its module-scoped fixtures (a grading, an export run
through nbgrader or otter, the student kit) are built once. ``--dist loadgroup`` with
``xdist_group`` marks did not group anything here: pytest-xdist 3.8 tags a grouped test by
setting ``item._nodeid``, which pytest 9 no longer reads, so the nbgrader course was built on both
workers (67 s each).
"""
