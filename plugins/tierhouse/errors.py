"""The one base class of every error tierhouse raises on purpose."""


class TierhouseError(Exception):
    """An expected failure: the CLI prints its message as one line, never a traceback."""
