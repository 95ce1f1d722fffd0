"""The one exception type users see: a message that says what was wrong and what to do."""


class NadkitError(ValueError):
    """Bad input or a missing resource; the CLI prints the message on one line and exits 2. A
    ``ValueError``, so that library callers catching bad arguments the usual way catch it too."""
