"""``make chaos``: the pipeline under random crashes of the embedded PostgreSQL, against an
undisturbed run of the same data.

Both runs do the same work, each in a throw-away database: every source loaded while a stream of
order-history imports with overlapping keys lands, the shop extract, one dbt build, then a
backfill of twelve months (every policy whose calendar lists the month publishes its list). The
chaos run does it while a thread kills the server (``pg_ctl stop -m immediate``: no checkpoint,
crash recovery on restart) at random moments and restarts it; every step is retried after a
failure, as Airflow retries a task; faults still to come once the work is done fall on reruns of
the backfill and of two imports, which must change nothing. The summary compares the two: faults injected, retries, rows
lost, rows doubled and the snapshot hashes of every list. Not part of ``make test``: it takes
minutes and stops the embedded server over and over.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import TypeVar

import psycopg2

from tierhouse.errors import TierhouseError
from tierhouse.grading import policy, transform
from tierhouse.ingest import loaders
from tierhouse.ingest.sources import ORDER_IMPORT, SOURCES
from tierhouse.lifecycle import publish
from tierhouse.periods import add_months
from tierhouse.privacy import access
from tierhouse.privacy.crypto import KEY_ENV, ensure_local_key
from tierhouse.warehouse.connection import EmbeddedWarehouse, WarehouseUrl, session, wait_until_ready
from tierhouse.warehouse.migrate import migrate

T = TypeVar("T")
END = date(2026, 11, 1)
MONTHS = [add_months(END, -offset) for offset in range(12, 0, -1)]
#: After this many failures in a row the killer holds off until the step succeeds: every step ends.
MAX_FAILURES_IN_A_ROW = 3
#: What a crash does to a step: the connection goes, dbt exits non-zero, the server is starting up
TRANSIENT = (psycopg2.Error, TierhouseError, subprocess.CalledProcessError)


@dataclasses.dataclass
class Faults:
    """The killer's side: how many crashes it caused, and whether it may cause more now."""

    wanted: int
    injected: int = 0
    retries: int = 0
    paused: threading.Event = dataclasses.field(default_factory=threading.Event)
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    #: set when the killer has stopped, whatever stopped it
    stopped: threading.Event = dataclasses.field(default_factory=threading.Event)


def _kill_at_random(server: EmbeddedWarehouse, faults: Faults, seed: int, gap: tuple[float, float]) -> None:
    rng = random.Random(seed)
    try:
        while faults.injected < faults.wanted and not faults.done.wait(rng.uniform(*gap)):
            if faults.paused.is_set():
                continue
            server.kill()
            faults.injected += 1
            server.start()
    finally:
        faults.stopped.set()


def _step(name: str, action: Callable[[], T], url: WarehouseUrl, faults: Faults | None) -> T:
    """Run a step to success, retrying after a crash (as Airflow retries a task)."""
    failures = 0
    while True:
        try:
            value = action()
        except TRANSIENT as exc:
            if faults is None:
                raise
            failures += 1
            faults.retries += 1
            if failures > 20:
                raise RuntimeError(f"{name}: still failing after 20 retries: {exc}") from exc
            if failures >= MAX_FAILURES_IN_A_ROW:
                faults.paused.set()
            wait_until_ready(url, timeout_s=120)
            continue
        if faults is not None:
            faults.paused.clear()
        return value


def _import_stream(data: Path) -> list[Path]:
    """Order-history files of 4,000 lines each, every one sharing half its keys with the one before."""
    header = ",".join(c.name for c in ORDER_IMPORT.columns)
    files = []
    for index in range(8):
        path = data / "incoming" / f"orders_{index:02d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [header]
        for key in range(index * 2000, index * 2000 + 4000):
            lines.append(
                f"C-{key:07d},1,2026-0{1 + key % 9}-03 10:00:00,store,SH01,,,WED-S014,wedding,standard,1,{100 + key % 7}.00"
            )
        path.write_text("\r\n".join(lines) + "\r\n")
        files.append(path)
    return files


def _run(url: WarehouseUrl, data: Path, incoming: list[Path], faults: Faults | None) -> dict:
    def step(name: str, action: Callable[[], T]) -> T:
        return _step(name, action, url, faults)

    step("migrate", lambda: migrate(url))
    step("grants", lambda: access.apply(url))
    step("seed shop", lambda: loaders.seed_shop_database(url, data / "shop"))
    landing = data / "landing"

    def import_stream() -> None:
        for path in incoming:
            step(f"import {path.name}", partial(loaders.import_order_file, url, path, landing))

    imports = threading.Thread(target=import_stream)
    imports.start()
    for source in SOURCES.values():
        if source is not ORDER_IMPORT:
            step(f"load {source.name}", partial(loaders.load_exports, url, source, data / source.subdir))
    step("extract shop", lambda: loaders.extract_shop_orders(url))
    imports.join()
    policies = policy.discover()
    step("load policies", lambda: policy.load_policies(url, policies))
    step("dbt build", lambda: transform.run_dbt(url, "build", "--exclude", "test_type:unit", "--quiet"))
    step("grants", lambda: access.apply(url))

    def backfill() -> None:
        for month in MONTHS:
            for graded in sorted({p.name for p in policies}):
                version = policy.in_force(graded, month, policies)
                if version is not None and version.lists_month(month):
                    step(f"publish {graded} {month:%Y-%m}", partial(publish.publish_initial_list, url, graded, month, "chaos"))

    backfill()
    # the faults not injected yet fall on reruns, which must change nothing (a rerun is unchanged)
    while faults is not None and not faults.stopped.is_set():
        backfill()
        for path in incoming[:2]:
            step(f"import {path.name} again", partial(loaders.import_order_file, url, path, landing))
    return _measure(url)


def _measure(url: WarehouseUrl) -> dict:
    with session(url) as conn, conn, conn.cursor() as cur:
        tables = {}
        for source in SOURCES.values():
            keys = ", ".join(source.unique_key)
            cur.execute(f"select count(*), count(distinct ({keys})) from raw.{source.table}")
            tables[source.table] = cur.fetchone()
        cur.execute("select count(*), count(distinct (order_id, line_no)) from raw.shop_order_lines")
        tables["shop_order_lines"] = cur.fetchone()
        cur.execute("select count(*) from raw.quarantine")
        quarantined = cur.fetchone()[0]
        cur.execute("select policy, period_month::text, list_kind, snapshot_hash from history.grading_runs order by 1, 2, 3")
        lists = {f"{p} {m[:7]} {k}": h for p, m, k, h in cur.fetchall()}
    return {"tables": tables, "quarantined": quarantined, "lists": lists}


def _database(server: WarehouseUrl, name: str, create: bool) -> WarehouseUrl:
    with session(server) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
            if create:
                cur.execute(f'create database "{name}"')
    return dataclasses.replace(server, dbname=name)


def summarise(calm: dict, chaos: dict, faults: Faults) -> dict:
    lost = sum(max(0, calm["tables"][t][0] - chaos["tables"][t][0]) for t in calm["tables"])
    doubled = sum(rows - distinct for rows, distinct in chaos["tables"].values()) + sum(
        max(0, chaos["tables"][t][0] - calm["tables"][t][0]) for t in calm["tables"]
    )
    equal = [name for name, digest in calm["lists"].items() if chaos["lists"].get(name) == digest]
    return {
        "faults_injected": faults.injected,
        "retries": faults.retries,
        "rows_lost": lost,
        "rows_doubled": doubled,
        "quarantined": {"undisturbed": calm["quarantined"], "chaos": chaos["quarantined"]},
        "lists": len(calm["lists"]),
        "hashes_equal": len(equal),
        "lists_only_in_one_run": sorted(set(calm["lists"]) ^ set(chaos["lists"])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tierhouse-chaos", description=__doc__)
    parser.add_argument("--faults", type=int, default=50)
    parser.add_argument("--customers", type=int, default=60)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--gap", type=float, nargs=2, default=(0.5, 3.0), help="seconds between faults, at random")
    args = parser.parse_args(argv)

    from tierhouse.devtools.generate import generate

    if not os.environ.get(KEY_ENV):  # the embedded warehouse's local keys, as the CLI uses them
        os.environ.update(ensure_local_key())
    server = EmbeddedWarehouse()
    base = server.start()
    wait_until_ready(base)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        generate(data, args.customers, 13, args.seed, END)
        started = time.monotonic()
        incoming = _import_stream(data)
        calm = _run(_database(base, "tierhouse_chaos_calm", True), data, incoming, None)
        print(f"undisturbed run: {time.monotonic() - started:.0f} s, {len(calm['lists'])} lists", flush=True)
        faults = Faults(args.faults)
        killer = threading.Thread(target=_kill_at_random, args=(server, faults, args.seed, tuple(args.gap)), daemon=True)
        url = _database(base, "tierhouse_chaos", True)
        # the landing area again from scratch, as the undisturbed run had it
        for landed in (data / "landing").rglob("*"):
            if landed.is_file():
                landed.unlink()
        started = time.monotonic()
        killer.start()
        try:
            chaos = _run(url, data, incoming, faults)
        finally:
            faults.done.set()
            killer.join()
            server.start()
        print(f"chaos run: {time.monotonic() - started:.0f} s", flush=True)
    for name in ("tierhouse_chaos_calm", "tierhouse_chaos"):
        _database(base, name, False)
    summary = summarise(calm, chaos, faults)
    print("CHAOS " + json.dumps(summary))
    healthy = summary["rows_lost"] == 0 and summary["rows_doubled"] == 0 and summary["hashes_equal"] == summary["lists"]
    return 0 if healthy and not summary["lists_only_in_one_run"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
