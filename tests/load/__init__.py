"""Benchmarks, run on demand with ``make bench``; not part of the test suite."""
