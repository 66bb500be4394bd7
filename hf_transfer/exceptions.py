"""Errors a user can act on: one line each, no traceback. Input errors subclass ValueError (exit status 2), so
callers that know only the standard library catch them; RunError is the environment failing mid-run (exit status 1);
Interrupted is a run stopped by a signal (exit status 130 or 143)."""


class ConfigError(ValueError):
    """An invalid flag value or combination, raised before any heavy work starts."""


class DataError(ValueError):
    """A dataset that cannot be used as given: missing column, empty split, unreadable file, ..."""


class RunError(RuntimeError):
    """A run that started but could not finish for a reason outside the user's input (a full disk, say); the message
    says what was kept and how to continue."""


class Interrupted(RunError, KeyboardInterrupt):
    """A run stopped by Ctrl-C (SIGINT) or SIGTERM. The message says where it stopped and how to continue;
    ``exit_status`` is the shell's convention (128 + the signal's number: 130, 143). Also a ``KeyboardInterrupt``, so
    code that stops on Ctrl-C keeps doing so."""

    def __init__(self, message: str, exit_status: int):
        super().__init__(message)
        self.exit_status = exit_status
