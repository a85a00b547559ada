"""``make bench``: the pipeline's stages on a larger data set, timed, in a throw-away database.

Speed is measured here, never asserted in the tests. Run with ``--customers`` / ``--months`` to
size it; results print as one line per stage plus a JSON summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TypeVar

from tierhouse.grading import policy, quality, transform
from tierhouse.ingest import loaders
from tierhouse.privacy import access
from tierhouse.warehouse.connection import resolve_url, session, wait_until_ready
from tierhouse.warehouse.migrate import migrate

T = TypeVar("T")


def _timed(label: str, results: dict, action: Callable[[], T]) -> T:
    started = time.perf_counter()
    value = action()
    results[label] = round(time.perf_counter() - started, 2)
    print(f"{label:<28} {results[label]:>8.2f} s   {value if value is not None else ''}", flush=True)
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tierhouse-bench")
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    from tierhouse.devtools.generate import generate

    server = resolve_url()
    wait_until_ready(server)
    dbname = f"tierhouse_bench_{int(time.time())}"
    with session(server) as conn:
        conn.autocommit = True
        conn.cursor().execute(f'create database "{dbname}"')
    url = dataclasses.replace(server, dbname=dbname)
    results: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp)
            counts = _timed(
                "generate", results, lambda: generate(data, args.customers, args.months, args.seed, date(2026, 11, 1))
            )
            _timed("migrate", results, lambda: len(migrate(url)))
            _timed("seed shop database", results, lambda: loaders.seed_shop_database(url, data / "shop"))
            _timed("load POS exports", results, lambda: loaders.load_pos_exports(url, data / "pos"))
            _timed("reload POS (no-op)", results, lambda: loaders.load_pos_exports(url, data / "pos"))
            _timed("extract shop orders", results, lambda: loaders.extract_shop_orders(url))
            _timed("load policies", results, lambda: policy.load_policies(url, policy.discover()))
            _timed("access controls", results, lambda: access.apply(url))
            _timed("dbt build", results, lambda: transform.run_dbt(url, "build", "--quiet").returncode)
            _timed(
                "publish gate (GE)",
                results,
                lambda: (
                    quality.run_checkpoint(
                        url, "publish_customer_tiers", {"policy": "highend_flower", "period_month": "2026-10-01"}
                    ).success
                ),
            )
        print(
            "BENCH "
            + json.dumps(
                {"customers": args.customers, "months": args.months, "counts": dataclasses.asdict(counts), "seconds": results}
            )
        )
    finally:
        with session(server) as conn:
            conn.autocommit = True
            conn.cursor().execute(f'drop database if exists "{dbname}" with (force)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
