"""nbgrader configuration of the weight-sharing problem set, written by `wsgrade export nbgrader`.

Run nbgrader from this folder:

    nbgrader generate_assignment weight_sharing   # source/ -> release/, solutions and hidden tests removed
    nbgrader autograde weight_sharing              # submitted/<student>/weight_sharing/ -> gradebook
    nbgrader generate_feedback weight_sharing      # feedback/ without the hidden tests

The grades come from the wsgrade sandbox (SandboxVerdict below), not from the student's kernel.
"""

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (nbgrader defines it when it reads this file)

# Seconds one cell may run when nbgrader executes a notebook (validate, autograde).
c.Execute.timeout = 120

# A test cell that a student deleted is put back at autograde time.
c.OverwriteCells.add_missing_cells = True

# nbgrader's OverwriteCells puts a deleted test cell back after the cell before it, and crashes the
# whole run (KeyError) when that cell is missing too, as in a foreign notebook (the standalone
# release's, another course's). PlaceMissingCells is the same step with a fallback: such cells go
# at the end, and SandboxVerdict tells the student their notebook was not the assignment's.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "autograder.integrations.nbgrader.PlaceMissingCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.PlaceMissingCells.add_missing_cells = True

# Feedback shows the verdict and the visible checks; nbgrader 0.9.6 has no switch for this, so
# ClearHiddenTests (the preprocessor generate_assignment uses) runs on the feedback too, after
# GetGrades has read the scores.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "nbgrader.preprocessors.ClearHiddenTests",
]

# nbgrader 0.9.6's autograde pipeline with three additions. StudentCodeOut takes the submitted code
# out of the notebook before anything executes it: nbgrader's Execute would otherwise run every
# student cell in a kernel with the instructor's rights (it could open gradebook.db, edit this file
# or print the installed reference into its outputs). SandboxVerdict grades that code in the wsgrade
# sandbox and writes each test cell's score into its output; StudentCodeBack puts the code back
# for the autograded copy and the feedback. The order matters: StudentCodeOut before Execute;
# SandboxVerdict after Execute (which replaces every output) and before SaveAutoGrades (which reads
# the score from the output); LimitOutput caps its feedback like any other output; Execute stays
# first of nbgrader's own and CheckCellMetadata last, as in nbgrader's list.
c.Autograde.autograde_preprocessors = [
    "autograder.integrations.nbgrader.StudentCodeOut",
    "nbgrader.preprocessors.Execute",
    "autograder.integrations.nbgrader.SandboxVerdict",
    "autograder.integrations.nbgrader.StudentCodeBack",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Where student code's file access cannot be restricted (process isolation), autograde refuses to
# grade unless this is True (see the wsgrade README, Security).
c.SandboxVerdict.allow_unisolated = False

# The sandbox's limits for one submission (as wsgrade grade --call-timeout/--memory-mb/--budget).
c.SandboxVerdict.call_timeout = 10.0
c.SandboxVerdict.memory_mb = 2048.0
c.SandboxVerdict.budget = 600.0
