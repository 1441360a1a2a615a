"""The hidden tests: pytest + hypothesis, run by the grader against a sandboxed submission.

Never part of the student release. Run them directly with
``pytest autograder/hidden_tests --submission PATH`` (the reference must score 100%, the stubs 0).
"""
