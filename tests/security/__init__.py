"""Regression tests for the security review of ba4907e (issue 11): each one attacks."""
