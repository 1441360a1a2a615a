"""The student kit's package, as a template: ``wsgrade export student`` builds its wheel from here.

Inside this repository ``wsgrade_student`` imports the grader's own helpers through three shims
(``_grader``, ``_loading``, ``_sandbox``), so that it can be run and type-checked in place; the
export replaces them with generated standalone copies (see :mod:`autograder.student_kit`).
"""
