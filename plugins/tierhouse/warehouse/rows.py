"""Rows in and out of the warehouse: query results as dicts, values for ``jsonb`` parameters."""

from __future__ import annotations

import json


def fetch_dicts(cur) -> list[dict]:
    """The cursor's remaining rows, each a dict of column name to value, in column order."""
    names = [column.name for column in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def to_json(value: object) -> str:
    """JSON for ``jsonb`` parameters (evidence, request details): dates and decimals as text,
    Chinese as it is."""
    return json.dumps(value, default=str, ensure_ascii=False)
