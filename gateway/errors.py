"""One exception hierarchy for the whole project.

Driver errors are translated into these at the ``persistence`` boundary; HTTP handlers turn
them into JSON answers.
"""

from __future__ import annotations


class WaitgateError(Exception):
    """Base of every error waitgate raises on purpose."""


class ConfigError(WaitgateError):
    """The configuration is invalid."""


class StoreError(WaitgateError):
    """The store failed in a way the caller cannot fix."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, is locked or is read-only; try again later."""


class NotFound(WaitgateError):
    """The thing asked for does not exist."""


class Conflict(WaitgateError):
    """A conditional write lost: the row was not in the state the transition needs."""


class InvalidInput(WaitgateError):
    """The request is well-formed but breaks a rule; the message names the rule."""
