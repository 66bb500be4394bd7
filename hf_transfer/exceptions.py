"""Errors a user can act on: one line each, no traceback. Input errors subclass ValueError (exit status 2), so
callers that know only the standard library catch them; RunError is the environment failing mid-run (exit status 1)."""


class ConfigError(ValueError):
    """An invalid flag value or combination, raised before any heavy work starts."""


class DataError(ValueError):
    """A dataset that cannot be used as given: missing column, empty split, unreadable file, ..."""


class RunError(RuntimeError):
    """A run that started but could not finish for a reason outside the user's input (a full disk, say); the message
    says what was kept and how to continue."""
