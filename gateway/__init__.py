"""waitgate: a resume webhook gateway for workflow engines."""

__version__ = "0.1.0"
