"""Grading constants that the dbt models and the Python package share, defined once: as dbt
``vars`` in ``dbt_project/dbt_project.yml``, which this module reads for Python.

dbt owns them and Python reads them, not the reverse, because the grades are computed in SQL:
``var()`` is how a dbt model (and each of its unit tests) reads a constant, whatever runs dbt
(Cosmos, the CLI, an engineer's shell). Python reads the YAML in one call; dbt could only see
a Python constant through an environment variable or a generated file that every one of those
callers would have to be handed. Overriding one of these with ``dbt --vars`` would split the
two sides, so nothing does.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

import yaml

from tierhouse import settings
from tierhouse.errors import TierhouseError

T = TypeVar("T")


class DbtVarError(TierhouseError, TypeError):
    """dbt_project.yml lacks a shared constant, or holds one of the wrong type."""


@cache
def dbt_vars() -> dict[str, Any]:
    """The ``vars`` block of dbt_project.yml, read once per process."""
    document = yaml.safe_load((settings.DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    return dict(document.get("vars") or {})


def dbt_var(name: str, kind: type[T]) -> T:
    """One var, checked to be of the type Python relies on."""
    value = dbt_vars().get(name)
    if not isinstance(value, kind):
        raise DbtVarError(f"dbt_project.yml vars.{name} must be a {kind.__name__}, got {value!r}")
    return value
