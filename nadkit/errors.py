"""The one exception type users see: a message that says what was wrong and what to do."""


class NadkitError(Exception):
    """Bad input or a missing resource; the CLI prints the message on one line and exits 2."""
