"""``tierhouse`` command line: warehouse, sample data, dbt, DAG runs and the tier summary."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

from tierhouse import settings

#: The generator's default end: data runs through October 2026, so October is the demo period.
DEMO_DATA_END = date(2026, 11, 1)
DEMO_PERIOD = "2026-10"


def _url():
    from tierhouse.warehouse import resolve_url, wait_until_ready

    url = resolve_url()
    wait_until_ready(url)
    return url


def cmd_warehouse(args: argparse.Namespace) -> int:
    from tierhouse.warehouse import EmbeddedWarehouse, resolve_url

    embedded = EmbeddedWarehouse()
    if args.action == "start":
        print(f"warehouse: {_url().redacted()}")
    elif args.action == "stop":
        embedded.stop()
        print("embedded warehouse stopped")
    elif args.action == "status":
        print("running" if embedded.is_running() else "stopped", f"({embedded.pgdata})")
    elif args.action == "url":
        url = resolve_url(start_embedded=False)
        print(url.url() if args.show_password else url.redacted())
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from tierhouse.generate import generate

    counts = generate(Path(args.out), args.customers, args.months, args.seed, date.fromisoformat(args.end))
    print(json.dumps(counts.__dict__))
    return 0


def cmd_seed_shop(args: argparse.Namespace) -> int:
    from tierhouse.ingest import seed_shop_database

    print(f"shop database: {seed_shop_database(_url(), Path(args.dir))} orders")
    return 0


def cmd_import_orders(args: argparse.Namespace) -> int:
    from tierhouse.ingest import format_load_report, import_order_file, load_report
    from tierhouse.privacy import KEY_ENV, ensure_local_key

    if not os.environ.get(KEY_ENV) and not os.environ.get("WAREHOUSE_URL"):
        os.environ.update(ensure_local_key())  # the embedded warehouse's local key
    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    url = _url()
    summary = import_order_file(url, path)
    print(f"{path.name}: {summary.rows_loaded} lines loaded, {summary.rows_quarantined} quarantined")
    print(format_load_report([r for r in load_report(url) if r.source == "imports"]))
    return 0 if summary.rows_quarantined == 0 else 3


def cmd_loads(_args: argparse.Namespace) -> int:
    from tierhouse.ingest import format_load_report, load_report

    reports = load_report(_url())
    print(format_load_report(reports))
    return 0 if all(r.reconciled for r in reports) else 1


def cmd_dbt(args: argparse.Namespace) -> int:
    from tierhouse.transform import run_dbt

    return run_dbt(_url(), *args.dbt_args, check=False).returncode


def cmd_manifest(_args: argparse.Namespace) -> int:
    """``dbt parse`` needs no database: the profile's defaults are enough to render it."""
    import subprocess

    from tierhouse.transform import dbt_executable

    cmd = [
        dbt_executable(),
        "parse",
        "--project-dir",
        str(settings.DBT_PROJECT_DIR),
        "--profiles-dir",
        str(settings.DBT_PROJECT_DIR),
    ]
    return subprocess.run(cmd, check=False).returncode


def cmd_run_dag(args: argparse.Namespace) -> int:
    from tierhouse.runner import LocalAirflow, dags_test

    result = dags_test(LocalAirflow(_url()), args.dag_id, args.logical_date, json.loads(args.conf) if args.conf else None)
    print(f"{args.dag_id}: run {result.run_id} ended {result.state}")
    return 0 if result.succeeded else 1


def cmd_summary(args: argparse.Namespace) -> int:
    from tierhouse.publish import format_summary, parse_period, tier_summary

    period_month = parse_period(args.period)
    rows = tier_summary(_url(), args.policy, period_month)
    print(format_summary(args.policy, period_month, rows))
    return 0 if rows else 1


def cmd_explain(args: argparse.Namespace) -> int:
    from tierhouse.explain import explain
    from tierhouse.publish import parse_period

    period = parse_period(args.period) if args.period else None
    print(explain(_url(), args.customer, args.policy, period))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from tierhouse.history import customer_history, format_history

    print(format_history(args.customer, customer_history(_url(), args.customer)))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from tierhouse.publish import parse_period
    from tierhouse.review import add_review, confirm_due_lists

    url = _url()
    if args.action == "add":
        missing = [name for name in ("policy", "period", "customer", "tier", "reviewer", "reason") if not getattr(args, name)]
        if missing:
            raise ValueError(f"review add needs --{' --'.join(missing)}")
        review_id = add_review(url, args.policy, parse_period(args.period), args.customer, args.tier, args.reviewer, args.reason)
        print(f"review {review_id} recorded")
    else:
        today = date.fromisoformat(args.today) if args.today else date.today()
        for outcome in confirm_due_lists(url, today):
            print(f"confirmed run {outcome.run_id}: {outcome.rows} customers")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from tierhouse.quality import run_checkpoint

    params = dict(item.split("=", 1) for item in args.param)
    outcome = run_checkpoint(_url(), args.checkpoint, params)
    for failure in outcome.failures:
        print(f"FAILED {failure}")
    print(f"{args.checkpoint}: {'passed' if outcome.success else 'FAILED'} ({outcome.evaluated} expectations)")
    return 0 if outcome.success else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Warehouse, sample data, both DAGs for real, then the tier summary."""
    from tierhouse.generate import generate
    from tierhouse.ingest import format_load_report, load_report, seed_shop_database
    from tierhouse.publish import format_summary, parse_period, tier_summary
    from tierhouse.runner import LocalAirflow, dags_test

    started = time.monotonic()
    url = _url()
    print(f"[demo] warehouse {url.redacted()}")
    data_dir = settings.DATA_DIR
    wanted = {"customers": args.customers, "months": args.months, "seed": args.seed, "end": DEMO_DATA_END.isoformat()}
    marker = data_dir / ".generated.json"
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        print(f"[demo] sample data in {data_dir} already generated with {wanted}")
    else:
        counts = generate(data_dir, args.customers, args.months, args.seed, DEMO_DATA_END)
        marker.write_text(json.dumps(wanted))
        print(f"[demo] generated {counts}")
    print(f"[demo] shop database holds {seed_shop_database(url, data_dir / 'shop')} online orders")

    airflow = LocalAirflow(url)
    # The ingest run for 2 Nov loads the business day of 1 Nov, which completes October.
    runs = [
        ("tierhouse_ingest", "2026-11-02", None),
        ("tierhouse_grading", None, {"period": DEMO_PERIOD}),
    ]
    for dag_id, logical_date, conf in runs:
        print(f"[demo] airflow dags test {dag_id} ...", flush=True)
        result = dags_test(airflow, dag_id, logical_date, conf, echo=args.verbose)
        print(f"[demo] {dag_id}: {result.state} (run {result.run_id})")
        if not result.succeeded:
            print(result.output[-8000:])
            return 1
    print()
    print(format_load_report(load_report(url)))
    for policy in ("highend_flower", "service_levels", "abcd"):
        period_month = parse_period(DEMO_PERIOD)
        print()
        print(format_summary(policy, period_month, tier_summary(url, policy, period_month)))
    print(f"\n[demo] done in {time.monotonic() - started:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierhouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("warehouse", help="start, stop or show the warehouse")
    p.add_argument("action", choices=["start", "stop", "status", "url"])
    p.add_argument("--show-password", action="store_true")
    p.set_defaults(func=cmd_warehouse)

    p = sub.add_parser("generate", help="write deterministic synthetic sources")
    p.add_argument("--customers", type=int, default=400)
    p.add_argument("--months", type=int, default=36)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--end", default=DEMO_DATA_END.isoformat(), help="first day after the generated data")
    p.add_argument("--out", default=str(settings.DATA_DIR))
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("seed-shop", help="fill the stand-in online shop database from generated files")
    p.add_argument("--dir", default=str(settings.DATA_DIR / "shop"))
    p.set_defaults(func=cmd_seed_shop)

    p = sub.add_parser("import-orders", help="load your own order history (generic CSV layout, see README)")
    p.add_argument("file")
    p.set_defaults(func=cmd_import_orders)

    p = sub.add_parser("loads", help="what was read, loaded and quarantined per source")
    p.set_defaults(func=cmd_loads)

    p = sub.add_parser("dbt", help="run dbt against the warehouse, e.g. `tierhouse dbt build`")
    p.add_argument("dbt_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_dbt)

    p = sub.add_parser("manifest", help="pre-build dbt_project/target/manifest.json for Cosmos")
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser("run-dag", help="run one DAG end to end with `airflow dags test`")
    p.add_argument("dag_id")
    p.add_argument("--logical-date")
    p.add_argument("--conf", help="JSON run configuration")
    p.set_defaults(func=cmd_run_dag)

    p = sub.add_parser("summary", help="print the published tier summary")
    p.add_argument("--policy", default="highend_flower")
    p.add_argument("--period", default=DEMO_PERIOD)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("explain", help="why a customer has their tier: indicators, bands, points, rules")
    p.add_argument("customer")
    p.add_argument("--policy", help="one policy (default: all)")
    p.add_argument("--period", help="YYYY-MM (default: the latest graded month)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("history", help="every recorded grade of a customer, with the run that produced it")
    p.add_argument("customer")
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("review", help="Art. 8 review: change a grade on an initial list, or confirm due lists")
    p.add_argument("action", choices=["add", "confirm"])
    p.add_argument("--policy", default="highend_flower")
    p.add_argument("--period", help="YYYY-MM")
    p.add_argument("--customer")
    p.add_argument("--tier", help="the new tier")
    p.add_argument("--reviewer")
    p.add_argument("--reason", help="mandatory: why the grade changes")
    p.add_argument("--today", help="YYYY-MM-DD (confirm): the day to confirm as of")
    p.set_defaults(func=cmd_review)

    p = sub.add_parser("check", help="run a Great Expectations checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--param", action="append", default=[], help="key=value for the checkpoint's filters")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("demo", help="the whole pipeline on sample data, then the tier summary")
    p.add_argument("--customers", type=int, default=400)
    p.add_argument("--months", type=int, default=36)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--verbose", action="store_true", help="stream the Airflow logs")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear one-line error for the user; tracebacks stay in the logs
        from tierhouse.policy import PolicyError
        from tierhouse.warehouse import WarehouseError
        from tierhouse.workdays import CalendarUnavailable

        if isinstance(exc, (PolicyError, WarehouseError, ValueError, FileNotFoundError, CalendarUnavailable)):
            print(f"tierhouse: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
