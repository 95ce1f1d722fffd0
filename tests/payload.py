"""A pickle that runs code when loaded (tests that .pth files are read with weights_only)."""


class Payload:
    """Unpickling this writes a marker file: a pickle that runs code when loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_mark, (str(self.path),))


def _mark(path):
    open(path, "w").write("ran")
