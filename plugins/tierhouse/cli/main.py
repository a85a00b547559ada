"""``tierhouse`` command line: warehouse, sample data, dbt, DAG runs and the tier summary."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

from tierhouse import settings
from tierhouse.devtools.demo import DEMO_DATA_END, DEMO_PERIOD
from tierhouse.errors import TierhouseError
from tierhouse.periods import parse_period


class UsageError(TierhouseError, ValueError):
    """A command asked for something it cannot do: a missing option, a missing file."""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{text!r} is not a day; expected YYYY-MM-DD") from None


def _url(job: str):
    """The warehouse as ``job``'s login (tierhouse.warehouse.connection.LOGINS); ``migrate`` is the
    admin login, for migrations, grants, the demo's set-up and the shop stand-in only."""
    from tierhouse.warehouse.connection import login_url, resolve_url, wait_until_ready

    url = resolve_url()
    wait_until_ready(url)
    return login_url(url, job)


def cmd_warehouse(args: argparse.Namespace) -> int:
    from tierhouse.warehouse.connection import EmbeddedWarehouse, resolve_url

    embedded = EmbeddedWarehouse()
    if args.action == "start":
        print(f"warehouse: {_url('migrate').redacted()}")
    elif args.action == "stop":
        embedded.stop()
        print("embedded warehouse stopped")
    elif args.action == "status":
        print("running" if embedded.is_running() else "stopped", f"({embedded.pgdata})")
    elif args.action == "url":
        url = resolve_url(start_embedded=False)
        print(url.url() if args.show_password else url.redacted())
    elif args.action == "migrate":
        from tierhouse.privacy import access
        from tierhouse.warehouse.migrate import migrate_and_report

        url = _url("migrate")
        for line in migrate_and_report(url):
            print(line)
        # each job's login needs its rights before its first command (the DAGs apply them too)
        access.apply(url)
        print("grants applied to every job's role")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from tierhouse.devtools.generate import generate

    counts = generate(Path(args.out), args.customers, args.months, args.seed, _day(args.end))
    print(json.dumps(counts.__dict__))
    return 0


def cmd_seed_shop(args: argparse.Namespace) -> int:
    from tierhouse.ingest.loaders import seed_shop_database

    shop_dir = Path(args.dir)
    if not shop_dir.is_dir():
        raise UsageError(f"no such directory: {shop_dir} (`tierhouse generate` writes it)")
    print(f"shop database: {seed_shop_database(_url('migrate'), shop_dir)} orders")
    return 0


def cmd_import_orders(args: argparse.Namespace) -> int:
    from tierhouse.ingest.loaders import format_load_report, import_order_file, load_report

    _local_keys()
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    url = _url("ingest")
    summary = import_order_file(url, path)
    print(f"{path.name}: {summary.rows_loaded} lines loaded, {summary.rows_quarantined} quarantined")
    print(format_load_report([r for r in load_report(url) if r.source == "imports"]))
    return 0 if summary.rows_quarantined == 0 else 3


def cmd_import(args: argparse.Namespace) -> int:
    from tierhouse.ingest.loaders import format_load_report, load_report
    from tierhouse.orchestration import pipeline

    paths = [Path(name) for name in args.files]
    pipeline.importable(args.source, paths)  # a wrong source or file is one line before any connection
    _local_keys()
    url = _url("ingest")
    summary = pipeline.import_files(url, args.source, paths)
    print(
        f"{args.source}: {summary.files_loaded} of {len(paths)} files loaded ({summary.files_seen - summary.files_loaded}"
        f" unchanged), {summary.rows_loaded} rows loaded, {summary.rows_quarantined} quarantined"
    )
    print(format_load_report([r for r in load_report(url) if r.source == args.source]))
    return 0 if summary.rows_quarantined == 0 else 3


def cmd_loads(_args: argparse.Namespace) -> int:
    from tierhouse.ingest.loaders import format_load_report, load_report

    reports = load_report(_url("ingest"))
    print(format_load_report(reports))
    return 0 if all(r.reconciled for r in reports) else 1


def cmd_dbt(args: argparse.Namespace) -> int:
    from tierhouse.grading.transform import run_dbt

    return run_dbt(_url("dbt"), *args.dbt_args, check=False).returncode


def cmd_manifest(_args: argparse.Namespace) -> int:
    """``dbt parse`` needs no database: the profile's defaults are enough to render it."""
    import subprocess

    from tierhouse.grading.transform import dbt_executable

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
    from tierhouse.orchestration.local_airflow import LocalAirflow, dags_test

    try:
        conf = json.loads(args.conf) if args.conf else None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--conf is not JSON: {exc}") from None
    result = dags_test(LocalAirflow(_url("migrate")), args.dag_id, args.logical_date, conf)
    print(f"{args.dag_id}: run {result.run_id} ended {result.state}")
    return 0 if result.succeeded else 1


def cmd_airflow(args: argparse.Namespace) -> int:
    from tierhouse.orchestration.deployment import ADMIN_USER, Deployment
    from tierhouse.warehouse.connection import resolve_url

    # only start needs the warehouse running (its server holds the metadata database)
    deployment = Deployment(_url("migrate") if args.action == "start" else resolve_url(start_embedded=False))
    if args.action == "stop":
        stopped = deployment.stop()
        print(f"airflow: stopped {', '.join(stopped)}" if stopped else "airflow: nothing was running")
        return 0
    states = deployment.start() if args.action == "start" else deployment.states()
    for state in states:
        print(f"{state.name:<14} {f'running (pid {state.pid})' if state.running else 'stopped'}")
    if not all(state.running for state in states):
        return 1
    print(f"Airflow UI: {deployment.url}  (login {ADMIN_USER} / {deployment.admin_password()})")
    print(f"logs and pid files: {deployment.log_dir}, {deployment.run_dir}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from tierhouse.grading.summary import format_summary, tier_summary

    period_month = parse_period(args.period)
    rows = tier_summary(_url("publish"), args.policy, period_month)
    print(format_summary(args.policy, period_month, rows))
    return 0 if rows else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    from tierhouse.grading.simulate import format_simulation, read_edited_policy, simulate

    policy_file = Path(args.policy)
    period_month = parse_period(args.period)
    edited = read_edited_policy(policy_file)  # before the warehouse: a bad file needs no server
    print(format_simulation(simulate(_url("review"), edited, period_month, args.nearest), policy_file))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tierhouse.lifecycle.report import collect, default_path, write_report

    period_month = parse_period(args.period)
    out = Path(args.out) if args.out else default_path(period_month, args.policy)
    print(f"report: {write_report(collect(_url('gate'), period_month, args.policy), out)}")
    return 0


def cmd_docs(_args: argparse.Namespace) -> int:
    from tierhouse.lifecycle.docs import build_docs

    docs = build_docs(_url("dbt"))
    for check in docs.checks:
        print(f"{check.checkpoint}: {'passed' if check.success else 'FAILED'} ({check.evaluated} expectations)")
    print(f"dbt docs: {docs.dbt_docs}\nData Docs: {docs.data_docs}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from tierhouse.grading.explain import explain

    period = parse_period(args.period) if args.period else None
    print(explain(_url("review"), args.customer, args.policy, period))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from tierhouse.lifecycle.history import customer_history, format_history

    print(format_history(args.customer, customer_history(_url("review"), args.customer)))
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from tierhouse.lifecycle.review import add_review, confirm_due_lists

    _local_keys()  # free text is checked for customer names, and the gate runs before confirming
    url = _url("review")
    if args.action == "add":
        missing = [name for name in ("policy", "period", "customer", "tier", "reviewer", "reason") if not getattr(args, name)]
        if missing:
            raise UsageError(f"review add needs --{' --'.join(missing)}")
        review_id = add_review(url, args.policy, parse_period(args.period), args.customer, args.tier, args.reviewer, args.reason)
        print(f"review {review_id} recorded")
    else:
        today = _day(args.today) if args.today else date.today()
        for outcome in confirm_due_lists(url, today):
            print(f"confirmed run {outcome.run_id}: {outcome.rows} customers")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    from tierhouse.lifecycle.review import approval_states, approve

    if args.list:
        states = approval_states(_url("review"))
        for state in states:
            approved = f" by {state.approver} on {state.approved_at:%Y-%m-%d}" if state.approver else ""
            print(f"{state.policy} {state.period_month:%Y-%m}  window closes {state.deadline}  {state.status}{approved}")
        if not states:
            print("no lists that require approval")
        return 1 if any(state.status == "overdue" for state in states) else 0
    missing = [name for name in ("policy", "period", "approver", "comment") if not getattr(args, name)]
    if missing:
        raise UsageError(f"approve needs --{' --'.join(missing)}")
    _local_keys()  # the approver and comment are checked for customer names, and the gate runs before publishing
    outcome = approve(_url("review"), args.policy, parse_period(args.period), args.approver, args.comment)
    print(f"approved: list {outcome.run_id} published ({outcome.rows} customers, hash {outcome.snapshot_hash[:12]})")
    return 0


def cmd_appeal(args: argparse.Namespace) -> int:
    from tierhouse.lifecycle import appeals

    _local_keys()  # free text is checked for customer names, and the gate runs before a correction
    url = _url("review")
    if args.action == "file":
        missing = [name for name in ("policy", "period", "customer", "request", "recorded_by") if not getattr(args, name)]
        if missing:
            raise UsageError(f"appeal file needs --{' --'.join(m.replace('_', '-') for m in missing)}")
        appeal_id, due_on = appeals.file_appeal(
            url, args.policy, parse_period(args.period), args.customer, args.request, args.recorded_by, args.channel
        )
        print(f"appeal {appeal_id} recorded; answer due by {due_on}")
    elif args.action == "answer":
        missing = [name for name in ("appeal_id", "answered_by", "basis") if not getattr(args, name)]
        if missing:
            raise UsageError(f"appeal answer needs --{' --'.join(m.replace('_', '-') for m in missing)}")
        outcome = appeals.answer_appeal(url, args.appeal_id, args.answered_by, args.basis, args.tier)
        print(f"appeal {args.appeal_id} answered: " + (f"corrected, list {outcome.run_id} published" if outcome else "upheld"))
    else:
        states = appeals.appeal_states(url)
        for state in states:
            print(
                f"{state.appeal_id}  {state.policy} {state.period_month:%Y-%m} {state.customer_key:<12} received"
                f" {state.received_at:%Y-%m-%d} due {state.due_on}  {state.status}{' (' + state.outcome + ')' if state.outcome else ''}"
            )
        if not states:
            print("no appeals")
        return 1 if any(state.status == "overdue" for state in states) else 0
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from tierhouse.lifecycle.backup import backup

    manifest = backup(_url("migrate"), Path(args.dir))
    print(
        f"{Path(args.dir) / 'warehouse.dump'}: {manifest.dump_bytes} bytes, SHA-256 {manifest.dump_sha256};"
        f" {len(manifest.recorded)} recorded and {len(manifest.published)} published lists in the manifest (no keys)"
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from tierhouse.lifecycle.backup import restore

    url = _url("migrate")
    manifest = restore(url, Path(args.dir))
    print(
        f"restored into {url.dbname}: {len(manifest.recorded)} recorded and {len(manifest.published)} published lists"
        " hash as the manifest says; migrations and grants applied"
    )
    return 0


def cmd_restatements(args: argparse.Namespace) -> int:
    from tierhouse.lifecycle import restatements

    url = _url("review")
    if args.action == "list":
        print(restatements.format_pending(restatements.pending(url)))
        return 0
    missing = [name for name in ("candidate", "decided_by", "reason") if not getattr(args, name)]
    if missing:
        raise UsageError(f"restatements {args.action} needs --{' --'.join(m.replace('_', '-') for m in missing)}")
    decision = {"accept": "accepted", "reject": "rejected"}[args.action]
    run_id = restatements.decide(url, args.candidate, decision, args.decided_by, args.reason)
    print(f"restatement {args.candidate} {decision}" + (f"; list {run_id} published" if run_id else "; the list in force stays"))
    return 0


def _local_keys() -> None:
    """Against the embedded warehouse, use its local keys unless the environment brings its own."""
    from tierhouse.privacy.crypto import KEY_ENV, ensure_local_key

    if not os.environ.get(KEY_ENV) and not os.environ.get("WAREHOUSE_URL"):
        os.environ.update(ensure_local_key())


def cmd_dsr(args: argparse.Namespace) -> int:
    from tierhouse.orchestration import pipeline

    _local_keys()
    if args.record_only:
        from tierhouse.privacy import dsr

        request_id = dsr.record(_url("steward"), args.kind, args.customer, args.requested_by, args.reason, args.field, args.value)
        print(f"{args.kind} request {request_id} recorded; carry it out with the tierhouse_dsr DAG, configuration"
              f' {{"request_id": "{request_id}"}}')  # fmt: skip
        return 0
    result = pipeline.data_subject_request(
        args.kind, args.customer, args.requested_by, args.reason, args.field, args.value, args.out, url=_url("steward")
    )
    print(result)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from tierhouse.grading.quality import run_checkpoint
    from tierhouse.orchestration.config import load_config

    malformed = [item for item in args.param if "=" not in item]
    if malformed:
        raise UsageError(f"--param takes key=value, got {malformed}")
    params = dict(item.split("=", 1) for item in args.param)
    # a checkpoint over sources checks the enabled ones, each with its freshness (tierhouse.yml)
    outcome = run_checkpoint(_url("gate"), args.checkpoint, params, sources=load_config().freshness())
    for failure in outcome.failures:
        print(f"FAILED {failure}")
    print(f"{args.checkpoint}: {'passed' if outcome.success else 'FAILED'} ({outcome.evaluated} expectations)")
    return 0 if outcome.success else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from tierhouse.devtools.demo import run_demo

    _local_keys()  # the demo's review and appeal are checked for customer names; its answer runs the gate
    return run_demo(_url("migrate"), args.customers, args.months, args.seed, verbose=args.verbose)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierhouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("warehouse", help="start, stop or show the warehouse, or apply its schema migrations")
    p.add_argument("action", choices=["start", "stop", "status", "url", "migrate"])
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

    p = sub.add_parser("import-orders", help="the same as `import imports FILE`: your own order history (generic layout)")
    p.add_argument("file")
    p.set_defaults(func=cmd_import_orders)

    p = sub.add_parser("import", help="land and load export files of one enabled source (layouts: docs/SOURCES.md)")
    p.add_argument("source", help="pos, crm, payments, custom_orders, feedback or imports")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.set_defaults(func=cmd_import)

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

    p = sub.add_parser("airflow", help="start, stop or show the local Airflow deployment (api-server, scheduler, ...)")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=cmd_airflow)

    p = sub.add_parser("summary", help="print the published tier summary")
    p.add_argument("--policy", default="highend_flower")
    p.add_argument("--period", default=DEMO_PERIOD)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("simulate", help="what-if: grade a period under an edited policy file, compare with the list in force")
    p.add_argument("--policy", required=True, help="the edited policy file (validated like policies/<name>/v<n>.yml)")
    p.add_argument("--period", required=True, help="YYYY-MM")
    p.add_argument("--nearest", type=int, default=5, help="customers shown nearest each threshold")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("report", help="the grading report of a period: a static HTML page with charts")
    p.add_argument("--period", required=True, help="YYYY-MM")
    p.add_argument("--policy", help="one policy (default: every policy with a list for the period)")
    p.add_argument("--out", help="the HTML file to write (default: reports/tierhouse-report-<period>[-<policy>].html)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("docs", help="dbt docs (static) and Great Expectations Data Docs, linked from the report")
    p.set_defaults(func=cmd_docs)

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

    p = sub.add_parser("approve", help="P2 approval: record an approver's approval of a list, or --list the lists awaiting one")
    p.add_argument("--policy")
    p.add_argument("--period", help="YYYY-MM")
    p.add_argument("--approver")
    p.add_argument("--comment", help="mandatory: the approver's comment (no personal data)")
    p.add_argument(
        "--list", action="store_true", help="every list that requires approval, with its status (exit 1 when one is overdue)"
    )
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("appeal", help="Art. 9 appeals: record a re-check request, answer it, list open and overdue ones")
    p.add_argument("action", choices=["file", "answer", "list"])
    p.add_argument("--policy", default="highend_flower")
    p.add_argument("--period", help="YYYY-MM: the list the customer disputes")
    p.add_argument("--customer")
    p.add_argument("--request", help="what the customer disputes (no personal data)")
    p.add_argument("--channel", default="service desk")
    p.add_argument("--recorded-by")
    p.add_argument("--appeal-id")
    p.add_argument("--answered-by")
    p.add_argument("--basis", help="mandatory: the result's basis")
    p.add_argument("--tier", help="the corrected tier (omit to uphold the grade)")
    p.set_defaults(func=cmd_appeal)

    p = sub.add_parser("dsr", help="data-subject requests: access, correction, consent withdrawal, erasure")
    p.add_argument("kind", choices=["access", "correction", "consent_withdrawal", "erasure"])
    p.add_argument("--customer", required=True, help="member id")
    p.add_argument("--requested-by", required=True, help="who handles the request")
    p.add_argument("--reason", required=True, help="the customer's request, in a sentence")
    p.add_argument("--field", help="correction: customer_type, name, phone or address")
    p.add_argument("--value", help="correction: the correct value")
    p.add_argument("--out", default=str(settings.STATE_DIR / "dsr"), help="access: directory for the export")
    p.add_argument("--record-only", action="store_true", help="record the request for the tierhouse_dsr DAG to carry out")
    p.set_defaults(func=cmd_dsr)

    p = sub.add_parser("backup", help="dump the warehouse into a new folder, with a manifest of every list's hash")
    p.add_argument("dir")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="restore a backup into an empty warehouse and check every list's hash")
    p.add_argument("dir")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("restatements", help="late data for published months: list the candidates, accept or reject one")
    p.add_argument("action", nargs="?", default="list", choices=["list", "accept", "reject"])
    p.add_argument("--candidate", help="the candidate id `restatements list` shows")
    p.add_argument("--decided-by", help="who decides")
    p.add_argument("--reason", help="mandatory: why")
    p.set_defaults(func=cmd_restatements)

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


class PlaceholderSecret(TierhouseError, ValueError):
    """A secret still holds the example value it shipped with."""


def refuse_placeholder_secrets() -> None:
    placeholders = settings.placeholder_secrets(dict(os.environ))
    if placeholders:
        raise PlaceholderSecret(
            f"{', '.join(placeholders)} still hold a placeholder value (see .env.example); set real secrets,"
            " e.g. `openssl rand -hex 32`"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        refuse_placeholder_secrets()
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except TierhouseError as exc:  # expected: its message says what to do; anything else keeps its traceback
        print(f"tierhouse: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        import psycopg2.errors

        if not isinstance(exc, psycopg2.errors.InsufficientPrivilege):
            raise
        # a job's login without its grants: a warehouse migrated but never granted, or a login misused
        reason = str(exc).strip().splitlines()[0]
        print(f"tierhouse: {reason}; run `tierhouse warehouse migrate`, which applies each job's grants", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
