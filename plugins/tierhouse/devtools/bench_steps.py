"""One step of ``make bench``, run in its own process so that its peak memory is its own.

``python -m tierhouse.devtools.bench_steps <step> <json arguments>`` runs in a local Airflow's
environment (the connections the DAG tasks read) and prints one ``BENCH-STEP {json}`` line: the
seconds the step took, timed inside the process once its imports are done, and what it found.
The ingest and grading steps call the functions the DAG tasks call (tierhouse.orchestration.pipeline),
in the order the DAGs run them; the DAG's Cosmos task group is one ``dbt build`` here.
"""

from __future__ import annotations

import csv
import json
import runpy
import sys
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import TypeVar

from tierhouse.errors import TierhouseError
from tierhouse.periods import parse_period

FLOOR_SQL = Path(__file__).with_name("bench_floor.sql")
P1 = "highend_flower"
T = TypeVar("T")


def _clock(timings: dict[str, float], label: str, action: Callable[[], T]) -> T:
    started = time.perf_counter()
    value = action()
    timings[label] = round(time.perf_counter() - started, 3)
    return value


def ingest(args: dict) -> dict:
    """The ingest DAG's tasks: migrate, grants, every export source and the shop database, raw gate."""
    from tierhouse.ingest.sources import SOURCES
    from tierhouse.orchestration import pipeline

    timings: dict[str, float] = {}
    _clock(timings, "migrate", pipeline.migrate_warehouse)
    _clock(timings, "access_controls", pipeline.apply_access_controls)
    rows = {}
    for name in SOURCES:
        rows[name] = _clock(timings, f"load_{name}", partial(pipeline.load_exports, name))
    rows["shop"] = _clock(timings, "extract_shop_orders", pipeline.extract_shop_orders)
    _clock(timings, "raw_quality_gate", pipeline.check_raw_quality)
    return {"timings": timings, "loaded": rows}


def grade(args: dict) -> dict:
    """The grading DAG's tasks for one month and every graded policy. A policy whose audit or
    publish fails is reported with its one-line reason; the others still run, as in the DAG."""
    from tierhouse.grading.transform import run_dbt
    from tierhouse.orchestration import pipeline
    from tierhouse.orchestration.config import load_config
    from tierhouse.warehouse.connection import resolve_url

    period = args["period"]
    timings: dict[str, float] = {}
    outcomes: dict[str, str] = {}
    _clock(timings, "migrate", pipeline.migrate_warehouse)
    _clock(timings, "access_controls", pipeline.apply_access_controls)
    _clock(timings, "load_policies", pipeline.load_policies)
    build = _clock(timings, "dbt_build", lambda: run_dbt(resolve_url(), "build", "--quiet", check=False).returncode)
    if build != 0:
        return {"timings": timings, "error": f"dbt build exited {build}", "policies": outcomes}
    try:
        _clock(timings, "deidentification_gate", pipeline.check_deidentification)
    except TierhouseError as exc:
        return {"timings": timings, "error": f"de-identification gate: {exc}", "policies": outcomes}
    for policy in load_config().policies:
        if not pipeline.lists_month(policy, period):
            outcomes[policy] = "no list this month"
            continue
        try:
            _clock(timings, f"audit_{policy}", partial(pipeline.audit_tiers, policy, period))
            published = _clock(timings, f"publish_{policy}", partial(pipeline.publish_tiers, policy, period, f"bench-{period}"))
            outcomes[policy] = str(published["status"])
        except TierhouseError as exc:
            outcomes[policy] = f"failed: {str(exc).splitlines()[0]}"
    return {"timings": timings, "policies": outcomes}


def _write_tiers(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


def _period_bounds(period: str) -> tuple[date, date, date]:
    from dateutil.relativedelta import relativedelta

    month = parse_period(period)
    period_end = month + relativedelta(months=1, days=-1)
    return month, period_end, month + relativedelta(months=-11)


def _fetch(cur, sql: str, params: dict) -> list[tuple[str, str]]:
    cur.execute(sql, params)
    return cur.fetchall()


def floor(args: dict) -> dict:
    """The hand-written statement (bench_floor.sql) for P1, its rows fetched."""
    from tierhouse.grading.policy import NO_TIER, in_force
    from tierhouse.warehouse.connection import session

    month, period_end, window_start = _period_bounds(args["period"])
    p1 = in_force(P1, month)
    assert p1 is not None, "P1 is in force for every benchmarked month"
    params = {
        "window_start": window_start,
        "period_end": period_end,
        "big_ticket": p1.settings["big_ticket_order_min"],
        "no_tier": NO_TIER,
    }
    timings: dict[str, float] = {}
    with session(_url(args)) as conn, conn.cursor() as cur:
        sql = FLOOR_SQL.read_text(encoding="utf-8")
        rows = _clock(timings, "statement", partial(_fetch, cur, sql, params))
    _write_tiers(Path(args["out"]), rows)
    return {"timings": timings, "graded": len(rows)}


def reference(args: dict) -> dict:
    """The independent pandas grader: load the raw tables once, grade every policy listing the month."""
    from tierhouse.devtools import reference_grading as ref
    from tierhouse.grading.policy import in_force

    month = parse_period(args["period"])
    timings: dict[str, float] = {}
    data = _clock(timings, "load", lambda: ref.load(_url(args)))
    graded = {}
    for name in ("highend_flower", "service_levels", "abcd"):
        version = in_force(name, month)
        if version is None or not version.lists_month(month):
            continue
        frame = _clock(timings, f"grade_{name}", partial(ref.grade, data, version, month))
        graded[name] = len(frame)
        if name == P1:
            _write_tiers(Path(args["out"]), list(zip(frame["customer_key"], frame["tier"], strict=True)))
    return {"timings": timings, "graded": graded}


def copy(args: dict) -> dict:
    """The loader (tierhouse.ingest.loaders.load_exports) on one file, into the raw tables."""
    from tierhouse.ingest import loaders
    from tierhouse.ingest.sources import SOURCES

    timings: dict[str, float] = {}
    summary = _clock(timings, "load", lambda: loaders.load_exports(_url(args), SOURCES[args["source"]], Path(args["dir"])))
    return {"timings": timings, "summary": getattr(summary, "__dict__", str(summary))}


def _parse_in_fork(path: str) -> tuple[float, float]:
    """Seconds and peak RSS (MiB) of executing one DAG file in a child forked from this process."""
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the parsing process: time the file, report through the pipe, exit
        os.close(read)
        started = time.perf_counter()
        runpy.run_path(path)
        os.write(write, repr(time.perf_counter() - started).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        reported = pipe.read()
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not reported:
        raise RuntimeError(f"parsing {Path(path).name} failed")
    return float(reported), usage.ru_maxrss / 1024


def parse(args: dict) -> dict:
    """Each DAG file executed as Airflow's DAG processor does and as tests/test_dags.py measures
    it: Airflow and its plugins loaded first (their cost is the installation's, not the file's),
    then one forked child per file; each file three times, the fastest counting (other work on a
    busy machine only ever adds time)."""
    import airflow.sdk  # noqa: F401  (pre-imported by the DAG processor)
    from airflow.sdk import plugins_manager

    plugins_manager.integrate_macros_plugins()
    timings, peaks = {}, {}
    for path in args["files"]:
        runs = [_parse_in_fork(path) for _ in range(3)]
        name = Path(path).name
        timings[name] = round(min(seconds for seconds, _ in runs), 3)
        peaks[name] = round(max(rss for _, rss in runs), 1)
    return {"timings": timings, "peak_rss_mb": peaks}


def _url(args: dict):
    from tierhouse.warehouse.connection import resolve_url

    return resolve_url(start_embedded=False)  # the bench's database, from WAREHOUSE_URL


STEPS = {"ingest": ingest, "grade": grade, "floor": floor, "reference": reference, "copy": copy, "parse": parse}


def main(argv: list[str] | None = None) -> int:
    step, raw = (argv or sys.argv[1:])[:2]
    result = STEPS[step](json.loads(raw))
    print("BENCH-STEP " + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
