"""docs/POLICY_TRACE.md maps each policy requirement to what implements it and what proves it.
Every reference in it must exist: a renamed model, DAG, file, GE suite, test or dbt unit test
fails here instead of leaving the trace pointing at nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import pytest

from tierhouse import settings

TRACE = settings.PROJECT_ROOT / "docs" / "POLICY_TRACE.md"
HEADER = ["Policy", "Article", "Requirement", "Implemented by", "Proved by"]
REFERENCE = re.compile(r"`(?P<kind>[a-z_]+):(?P<name>[^`]+)`")
SHIPPED = {"P1", "P2", "P3", "002"}


@dataclass(frozen=True)
class TraceRow:
    policy: str
    article: str
    requirement: str
    implemented_by: tuple[tuple[str, str], ...]
    proved_by: tuple[tuple[str, str], ...]


def parse_trace(text: str) -> list[TraceRow]:
    """The rows of the table whose header is HEADER; references are backticked ``kind:name``."""
    rows, in_table = [], False
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells == HEADER:
            in_table = True
        elif in_table and cells is None:
            break
        elif in_table and not set(cells[0]) <= {"-", " "}:
            assert len(cells) == len(HEADER), f"row has {len(cells)} cells: {line}"
            policy, article, requirement, implemented, proved = cells
            rows.append(TraceRow(policy, article, requirement, _references(implemented), _references(proved)))
    return rows


def _references(cell: str) -> tuple[tuple[str, str], ...]:
    return tuple((m["kind"], m["name"]) for m in REFERENCE.finditer(cell))


@cache
def _manifest() -> dict:
    assert settings.DBT_MANIFEST.exists(), "run `make manifest` first"
    return json.loads(settings.DBT_MANIFEST.read_text())


def _model_exists(name: str) -> bool:
    return any(n["resource_type"] == "model" and n["name"] == name for n in _manifest()["nodes"].values())


def _unit_test_exists(name: str) -> bool:
    return any(test["name"] == name for test in _manifest()["unit_tests"].values())


def _dag_exists(dag_id: str) -> bool:
    path = settings.PROJECT_ROOT / "dags" / f"{dag_id}.py"
    return path.is_file() and re.search(rf"""dag_id\s*=\s*["']{re.escape(dag_id)}["']""", path.read_text()) is not None


def _file_exists(path: str) -> bool:
    return (settings.PROJECT_ROOT / path).is_file()


def _suite_exists(name: str) -> bool:
    return (settings.EXPECTATIONS_DIR / "suites" / f"{name}.json").is_file()


def _checkpoint_exists(name: str) -> bool:
    return (settings.EXPECTATIONS_DIR / "checkpoints" / f"{name}.yml").is_file()


def _test_exists(reference: str) -> bool:
    path, _, function = reference.partition("::")
    file = settings.PROJECT_ROOT / path
    return (
        bool(function)
        and file.is_file()
        and re.search(rf"^\s*(async\s+)?def {re.escape(function)}\(", file.read_text(), re.M) is not None
    )


RESOLVERS: dict[str, Callable[[str], bool]] = {
    "model": _model_exists,
    "unit_test": _unit_test_exists,
    "dag": _dag_exists,
    "file": _file_exists,
    "suite": _suite_exists,
    "checkpoint": _checkpoint_exists,
    "test": _test_exists,
}


@pytest.fixture(scope="module")
def trace() -> list[TraceRow]:
    return parse_trace(TRACE.read_text())


def test_the_trace_covers_every_shipped_policy(trace: list[TraceRow]) -> None:
    assert {row.policy for row in trace} >= SHIPPED


def test_every_requirement_names_what_implements_and_what_proves_it(trace: list[TraceRow]) -> None:
    for row in trace:
        assert row.requirement, row
        assert row.implemented_by, f"{row.policy} {row.article}: nothing implements {row.requirement!r}"
        assert row.proved_by, f"{row.policy} {row.article}: nothing proves {row.requirement!r}"


def test_every_reference_exists(trace: list[TraceRow]) -> None:
    missing = [
        f"{row.policy} {row.article}: `{kind}:{name}`"
        for row in trace
        for kind, name in (*row.implemented_by, *row.proved_by)
        if kind not in RESOLVERS or not RESOLVERS[kind](name)
    ]
    assert missing == [], "unknown kind or missing target:\n" + "\n".join(missing)


def test_the_check_catches_a_dangling_reference() -> None:
    text = "\n".join(
        [
            "| " + " | ".join(HEADER) + " |",
            "| --- | --- | --- | --- | --- |",
            "| P1 | Art. 6 | tiers | `model:fct_customer_tiers` `model:fct_no_such_model` | `test:tests/test_policy.py::test_nope` |",
        ]
    )
    (row,) = parse_trace(text)
    assert [RESOLVERS[kind](name) for kind, name in row.implemented_by] == [True, False]
    assert [RESOLVERS[kind](name) for kind, name in row.proved_by] == [False]
