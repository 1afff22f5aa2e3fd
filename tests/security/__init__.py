"""Regression tests for the outside security review of ba4907e (issue 11): each performs an attack."""
