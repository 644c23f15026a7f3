"""The one exception type users see: its message names the bad input and what would be right."""


class OdqaError(Exception):
    """A problem with the user's input, files or configuration (not a bug in odqa)."""
