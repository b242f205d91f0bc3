"""Errors a user can fix, shared by every app.

A :class:`UsageError` means "bad usage or bad input": the command line interface prints its
message as one line on stderr (``error: ...``), without a traceback, and exits with status 2.
Every other exception is an unexpected failure (status 1, traceback shown).
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad usage or bad input; the message is one line that says what to fix.

    Example:
        >>> raise UsageError("--epochs: must be an integer >= 1, got '0'")
    """


class DataError(UsageError):
    """A data source that cannot be read: missing path, bad encoding, unknown dataset."""


class ConfigError(UsageError):
    """A configuration file or value that is not valid for the app's config."""


class RunDirError(UsageError):
    """A run directory that does not exist, is not a run dir, or belongs to another app."""
