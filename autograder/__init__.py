"""The weight-sharing problem set: reference, student release and a sandboxed grader."""

__all__ = ["__version__"]

__version__ = "0.1.0"
