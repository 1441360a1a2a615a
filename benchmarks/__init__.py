"""Benchmarks: scripts that print numbers (run them from the repository root with python -m benchmarks.NAME)."""
