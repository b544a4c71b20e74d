"""The one exception type a user sees: a clear, one-line message, never a deep traceback."""


class DdipError(Exception):
    """A problem with the user's input or configuration, reported as one line by ``train.py``."""
