"""In this repository: the grader's notebook loading itself (a standalone copy in the exported kit)."""

from autograder.submission import SubmissionError, notebook_code_cells

__all__ = ["SubmissionError", "notebook_code_cells"]
