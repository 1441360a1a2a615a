"""The weight-sharing problem set's self-check: the grader's public tests and feedback, on your machine.

``wsgrade check weight_sharing.ipynb`` (or ``wscheck``) runs your code in a separate Python process
and compares its answers on the public tests' inputs with the answers recorded from the grader.
The kit holds those inputs and answers, never the grader's solution or its hidden tests.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
