"""``make bench``: the issue-17 benchmark, in throw-away databases on the warehouse's server.

For one size (``--customers``; ``--scale small`` is the smoke-test size) it generates all six
sources, loads them through the ingest DAG's task functions, then times (a) one month's grading of
every policy through the grading DAG's task functions, (b) the bare-SQL floor
(``bench_floor.sql``), (c) the pandas reference grader, (d) the next month graded on top of 24 and
of 12 months of history (the 12-month history is a second throw-away database), (e) the loader
against psql ``\\copy`` of the same file and (f) each DAG file's parse time. Every step runs in its
own process (``bench_steps``), so its peak memory (RSS, from ``wait4``) is its own; the
PostgreSQL server's memory is not in it. (a), (b) and (c) must give the same P1 tiers: mismatches
are counted and reported, never raised. Results are merged by size into ``bench/results.json``
and rendered into docs/BENCHMARK.md (``bench_report``). Speed is measured here, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from tierhouse import settings
from tierhouse.devtools import bench_report
from tierhouse.errors import TierhouseError
from tierhouse.orchestration.local_airflow import LocalAirflow
from tierhouse.privacy.crypto import KEY_ENV, PII_KEY_ENV
from tierhouse.warehouse.connection import EmbeddedWarehouse, WarehouseUrl, resolve_url, session

SCALES = {
    "small": {"customers": 150, "months": 24},
    "10k": {"customers": 10_000, "months": 24},
    "100k": {"customers": 100_000, "months": 24},
    "1m": {"customers": 1_000_000, "months": 24},
}
DATA_END = date(2026, 11, 1)  # data through October 2026
FULL_PERIOD = "2026-09"  # a quarter end: all three policies list it
NEXT_PERIOD = "2026-10"
RESULTS = settings.PROJECT_ROOT / "bench" / "results.json"


class BenchStepFailed(TierhouseError, RuntimeError):
    """A benchmark step's process failed; its output's tail is in the message."""


@dataclasses.dataclass(frozen=True)
class Measured:
    seconds: float
    peak_rss_mb: float
    result: dict


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str, int]:
    """Wall seconds, the child's peak RSS (MiB, its waited-for descendants included), output, exit code."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, output, proc.returncode


class Bench:
    def __init__(self, server: WarehouseUrl, work: Path, airflow_home: Path) -> None:
        self.server, self.work, self.airflow_home = server, work, airflow_home
        self.databases: list[str] = []

    def database(self, label: str) -> WarehouseUrl:
        name = f"tierhouse_bench_{label}_{int(time.time())}"
        with session(self.server) as conn:
            conn.autocommit = True
            conn.cursor().execute(f'create database "{name}"')
        self.databases.append(name)
        return dataclasses.replace(self.server, dbname=name)

    def drop_databases(self) -> None:
        with session(self.server) as conn:
            conn.autocommit = True
            for name in self.databases:
                conn.cursor().execute(f'drop database if exists "{name}" with (force)')

    def env(self, url: WarehouseUrl, data: Path | None = None) -> dict[str, str]:
        extra = {"TIERHOUSE_DATA_DIR": str(data)} if data else {}
        env = LocalAirflow(url, self.airflow_home, tuple(extra.items())).env()
        env["WAREHOUSE_URL"] = url.url()
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
        return env

    def step(self, step: str, url: WarehouseUrl, data: Path | None = None, **args: object) -> Measured:
        cmd = [sys.executable, "-m", "tierhouse.devtools.bench_steps", step, json.dumps(args)]
        seconds, rss, output, code = measure(cmd, self.env(url, data))
        line = next((x for x in reversed(output.splitlines()) if x.startswith("BENCH-STEP ")), None)
        if code != 0 or line is None:
            raise BenchStepFailed(f"bench step {step} failed (exit {code}):\n{output[-4000:]}")
        result = json.loads(line.removeprefix("BENCH-STEP "))
        inner = sum(result.get("timings", {}).values())
        print(
            f"[bench] {step:<10} {json.dumps(args)[:60]:<60} {inner:8.2f} s  ({seconds:.1f} s with start-up)  peak {rss:.0f} MiB"
        )
        print(f"[bench]            {json.dumps({k: v for k, v in result.items() if k != 'loaded'})[:400]}", flush=True)
        return Measured(round(inner, 3), round(rss, 1), result)

    def generate(self, customers: int, months: int, seed: int, out: Path) -> Measured:
        cmd = [str(Path(sys.executable).with_name("tierhouse")), "generate", "--out", str(out), "--customers", str(customers),
               "--months", str(months), "--seed", str(seed), "--end", DATA_END.isoformat()]  # fmt: skip
        seconds, rss, output, code = measure(cmd, dict(os.environ))
        if code != 0:
            raise BenchStepFailed(f"generate failed (exit {code}):\n{output[-4000:]}")
        print(f"[bench] generate   {customers} customers x {months} months {seconds:8.2f} s  peak {rss:.0f} MiB")
        return Measured(round(seconds, 3), round(rss, 1), {"output": output.strip()[-500:]})

    def loaded(self, customers: int, months: int, seed: int, label: str) -> tuple[WarehouseUrl, Path, dict]:
        """A database holding every source of a generated data set, loaded by the ingest tasks."""
        from tierhouse.ingest.loaders import seed_shop_database
        from tierhouse.warehouse.migrate import migrate_and_report

        data = self.work / label
        steps = {"generate": self.generate(customers, months, seed, data)}
        url = self.database(label)
        # a migrated warehouse holding the stand-in shop database the ingest DAG extracts online
        # orders from, as `make demo` sets it up (not timed)
        migrate_and_report(url)
        seed_shop_database(url, data / "shop")
        steps["ingest"] = self.step("ingest", url, data)
        return url, data, steps


def _tiers(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8") as handle:
        return {row[0]: row[1] for row in csv.reader(handle)}


def project_tiers(url: WarehouseUrl, period: str) -> dict[str, str]:
    """P1's published initial list for the month (what the grading tasks recorded)."""
    from tierhouse.devtools.bench_steps import P1

    with session(url) as conn, conn.cursor() as cur:
        cur.execute(
            "select s.customer_key, s.tier from history.tier_snapshots as s join history.grading_runs as r using (run_id)"
            " where r.policy = %s and r.period_month = %s and r.list_kind = 'initial'",
            (P1, f"{period}-01"),
        )
        return dict(cur.fetchall())


def compare(named: dict[str, dict[str, str]]) -> dict:
    """Customers graded by one side only and customers whose tier differs, against the project's."""
    base = named["project"]
    report: dict[str, object] = {"graded": {name: len(tiers) for name, tiers in named.items()}}
    for name, tiers in named.items():
        if name == "project":
            continue
        only_here, only_project = sorted(set(tiers) - set(base)), sorted(set(base) - set(tiers))
        differ = sorted(key for key in set(tiers) & set(base) if tiers[key] != base[key])
        report[name] = {
            "agree": not (only_here or only_project or differ),
            "only_here": len(only_here),
            "only_project": len(only_project),
            "tier_differs": len(differ),
            "examples": [f"{k}: {base[k]} vs {tiers[k]}" for k in differ[:5]] + only_here[:3] + only_project[:3],
        }
    return report


def copy_comparison(bench: Bench, data: Path) -> dict:
    """The loader against psql ``\\copy`` on the same file: every payments export joined into one,
    loaded into a database of its own (in the graded one every row would be a duplicate key)."""
    from tierhouse.ingest.sources import PAYMENTS
    from tierhouse.warehouse.migrate import migrate

    url = bench.database("copy")
    migrate(url)

    exports = sorted((data / PAYMENTS.subdir).glob("*.csv"))
    target = bench.work / "copy" / PAYMENTS.subdir
    target.mkdir(parents=True)
    joined = target / "payments_209912.csv"
    with joined.open("wb") as out:
        for index, path in enumerate(exports):
            lines = path.read_bytes().splitlines(keepends=True)
            out.writelines(lines if index == 0 else lines[1:])
    rows = sum(1 for _ in joined.open("rb")) - 1
    loader = bench.step("copy", url, source="payments", dir=str(target))
    psql = str(Path(EmbeddedWarehouse.bin_dir()) / "psql")
    with session(url) as conn, conn.cursor() as cur:
        header = joined.read_bytes().splitlines()[0].decode("utf-8-sig").split(",")
        columns = ", ".join(f"c{i} text" for i in range(len(header)))
        cur.execute(f"create table public.bench_copy ({columns})")
        conn.commit()
    env = {**os.environ, "PGPASSWORD": url.password}
    cmd = [psql, "-X", "-q", "-h", url.host, "-p", str(url.port), "-U", url.user, "-d", url.dbname, "-c",
           f"\\copy public.bench_copy from '{joined}' with (format csv, header true, encoding 'UTF8')"]  # fmt: skip
    seconds, rss, output, code = measure(cmd, env)
    if code != 0:
        raise BenchStepFailed(f"psql \\copy failed:\n{output[-2000:]}")
    print(f"[bench] psql copy  {rows} rows {seconds:8.2f} s  peak {rss:.0f} MiB")
    return {
        "file_rows": rows,
        "file_bytes": joined.stat().st_size,
        "loaded_rows": loader.result["summary"]["rows_loaded"],
        "quarantined_rows": loader.result["summary"]["rows_quarantined"],  # the generator's planted bad payment
        "loader": {"seconds": loader.seconds, "peak_rss_mb": loader.peak_rss_mb, "rows_per_second": round(rows / loader.seconds)},
        "psql_copy": {"seconds": round(seconds, 3), "peak_rss_mb": round(rss, 1), "rows_per_second": round(rows / seconds)},
    }


def parse_times(bench: Bench, url: WarehouseUrl) -> dict:
    files = sorted(str(path) for path in (settings.PROJECT_ROOT / "dags").glob("*.py"))
    result = bench.step("parse", url, files=files).result
    return {name: {"seconds": seconds, "peak_rss_mb": result["peak_rss_mb"][name]} for name, seconds in result["timings"].items()}


def machine() -> dict:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(total / 2**30, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def run(customers: int, months: int, seed: int, work: Path) -> dict:
    server = resolve_url()
    # The run's own Airflow home (its connections file names the run's databases), so that two
    # runs never read each other's; the task functions need no metadata database.
    bench = Bench(server, work, work / "airflow")
    started, load_before = time.perf_counter(), machine()["load_average"]
    steps: dict[str, object] = {}
    try:
        url, data, loading = bench.loaded(customers, months, seed, "h24")
        steps.update(loading)
        tier_files = {name: work / f"{name}.csv" for name in ("floor", "reference")}
        steps["grade_full"] = bench.step("grade", url, period=FULL_PERIOD)
        steps["floor_p1"] = bench.step("floor", url, period=FULL_PERIOD, out=str(tier_files["floor"]))
        steps["pandas_reference"] = bench.step("reference", url, period=FULL_PERIOD, out=str(tier_files["reference"]))
        agreement = compare(
            {"project": project_tiers(url, FULL_PERIOD), **{name: _tiers(path) for name, path in tier_files.items()}}
        )
        steps["grade_next_24"] = bench.step("grade", url, period=NEXT_PERIOD)
        copies = copy_comparison(bench, data)
        parses = parse_times(bench, url)
        url12, _, loading12 = bench.loaded(customers, 12, seed, "h12")
        steps["generate_12"], steps["ingest_12"] = loading12["generate"], loading12["ingest"]
        steps["grade_full_12"] = bench.step("grade", url12, period=FULL_PERIOD)
        steps["grade_next_12"] = bench.step("grade", url12, period=NEXT_PERIOD)
    finally:
        bench.drop_databases()
    return {
        "customers": customers,
        "months": months,
        "seed": seed,
        "periods": {"full": FULL_PERIOD, "next": NEXT_PERIOD},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_before": load_before},
        "total_seconds": round(time.perf_counter() - started, 1),
        "steps": {name: dataclasses.asdict(m) if isinstance(m, Measured) else m for name, m in steps.items()},
        "p1_agreement": agreement,
        "copy": copies,
        "dag_parse": parses,
        "ratios": bench_report.ratios(steps, copies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tierhouse-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), help="a preset size (small: the smoke test's)")
    parser.add_argument("--customers", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON merged by size (default bench/results.json)")
    parser.add_argument("--doc", type=Path, default=settings.PROJECT_ROOT / "docs" / "BENCHMARK.md",
                        help="Markdown file whose generated section is rewritten ('-': none)")  # fmt: skip
    args = parser.parse_args(argv)
    size = dict(SCALES[args.scale or "10k"])
    if args.customers:
        size["customers"] = args.customers
    # Throw-away keys, as the tests use: the generated people are not real, and the bench's
    # pseudonyms must never be comparable with a real warehouse's.
    os.environ.setdefault(KEY_ENV, secrets.token_hex(32))
    os.environ.setdefault(PII_KEY_ENV, secrets.token_hex(32))
    work = Path(tempfile.mkdtemp(prefix="tierhouse-bench-"))
    try:
        result = run(size["customers"], size["months"], args.seed, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = json.loads(args.results.read_text()) if args.results.exists() else {"runs": {}}
    results["runs"][str(size["customers"])] = result
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"[bench] results in {args.results}")
    if str(args.doc) != "-":
        bench_report.render(results, args.doc)
        print(f"[bench] {args.doc} updated")
    agreement = result["p1_agreement"]
    print(
        "[bench] P1 tiers: "
        + ", ".join(f"{k} {'agree' if v['agree'] else 'DIFFER'}" for k, v in agreement.items() if k != "graded")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
