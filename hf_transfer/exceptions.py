"""Errors a user can act on. Both subclass ValueError, so callers that know only the standard library catch them."""


class ConfigError(ValueError):
    """An invalid flag value or combination, raised before any heavy work starts."""


class DataError(ValueError):
    """A dataset that cannot be used as given: missing column, empty split, unreadable file, ..."""
