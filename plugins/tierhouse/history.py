"""The grading history auditors rely on: append-only, reproducible, explained.

Every list that is published (the month-end initial list today; confirmed, quarterly and
appeal lists build on the same tables) is recorded as a run with its policy version, the
Airflow run, the code version, a fingerprint of the exact inputs and a hash of the exact
result, and one snapshot row per customer. Nothing here is ever updated or deleted: triggers
refuse it. A list already published for a period is never replaced: different results for it
(late data) are recorded as a restatement candidate for a person to decide on.
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from tierhouse import settings
from tierhouse.warehouse import WarehouseUrl, connect

HISTORY_DDL = """
create schema if not exists history;

create table if not exists history.grading_runs (
    run_id            uuid        primary key,
    policy            text        not null,
    policy_version    integer     not null,
    period_month      date        not null,
    list_kind         text        not null check (list_kind in ('initial', 'confirmed', 'quarterly', 'appeal')),
    airflow_run_id    text,
    code_version      text        not null,
    policy_sha256     text        not null,
    input_fingerprint text        not null,
    snapshot_hash     text        not null,
    row_count         integer     not null,
    created_at        timestamptz not null default now()
);
create unique index if not exists grading_runs_one_initial_list
    on history.grading_runs (policy, policy_version, period_month) where list_kind = 'initial';

create table if not exists history.tier_snapshots (
    run_id                uuid    not null references history.grading_runs (run_id),
    customer_key          text    not null,
    tier                  text    not null,
    tier_rank             integer not null,
    decided_by            text    not null,
    composite_score       numeric,
    consumption_attribute text,
    demand_feature        text,
    cooperation_feature   text,
    primary key (run_id, customer_key)
);

create table if not exists history.restatement_candidates (
    candidate_id      uuid        primary key,
    published_run_id  uuid        not null references history.grading_runs (run_id),
    input_fingerprint text        not null,
    snapshot_hash     text        not null,
    changed_customers integer     not null,
    airflow_run_id    text,
    detected_at       timestamptz not null default now()
);

create table if not exists history.reviews (
    review_id     uuid        primary key,
    policy        text        not null,
    period_month  date        not null,
    customer_key  text        not null,
    reviewer      text        not null,
    new_tier      text        not null,
    reason        text        not null check (length(trim(reason)) > 0),
    created_at    timestamptz not null default now()
);

create table if not exists history.tier_changes (
    run_id        uuid        not null references history.grading_runs (run_id),
    customer_key  text        not null,
    from_tier     text,
    to_tier       text        not null,
    rule          text        not null,
    evidence      jsonb       not null,
    primary key (run_id, customer_key)
);

create or replace function history.refuse_change() returns trigger language plpgsql as $$
begin
    raise exception 'history is append-only: % on %.% refused', tg_op, tg_table_schema, tg_table_name;
end
$$;
"""
_HISTORY_TABLES = ("grading_runs", "tier_snapshots", "restatement_candidates", "reviews", "tier_changes")
SNAPSHOT_COLUMNS = (
    "customer_key", "tier", "tier_rank", "decided_by", "composite_score",
    "consumption_attribute", "demand_feature", "cooperation_feature",
)  # fmt: skip


def ensure_schema(cur) -> None:
    cur.execute("select pg_advisory_xact_lock(hashtext('tierhouse.history.ddl'))")
    cur.execute(HISTORY_DDL)
    for table in _HISTORY_TABLES:
        cur.execute(
            f"""
            do $$ begin
                if not exists (select 1 from pg_trigger where tgname = '{table}_append_only') then
                    create trigger {table}_append_only before update or delete on history.{table}
                        for each row execute function history.refuse_change();
                    create trigger {table}_no_truncate before truncate on history.{table}
                        for each statement execute function history.refuse_change();
                end if;
            end $$;
            """
        )


def _canonical(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def digest(rows: list[tuple]) -> str:
    """SHA-256 over rows in a canonical text form: equal data, equal hash, on any machine."""
    sha = hashlib.sha256()
    for row in rows:
        sha.update(("\t".join(_canonical(v) for v in row) + "\n").encode())
    return sha.hexdigest()


def code_version() -> str:
    """The git commit of the running code, or what the deployment says it is."""
    import os

    if os.environ.get("TIERHOUSE_CODE_VERSION"):
        return os.environ["TIERHOUSE_CODE_VERSION"]
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=settings.PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass(frozen=True)
class PublishOutcome:
    run_id: str
    status: str  # published | unchanged | restatement_candidate
    rows: int
    snapshot_hash: str


def publish_initial_list(url: WarehouseUrl, policy: str, period_month: date, airflow_run_id: str | None = None) -> PublishOutcome:
    """Record the period's initial list and publish it, in one transaction — once.

    Rerunning a period with the same inputs changes nothing; different results for a period
    already published become a restatement candidate and the published list stays as it was.
    """
    from tierhouse.publish import PUBLISHED_DDL

    with connect(url) as conn, conn.cursor() as cur:
        ensure_schema(cur)
        cur.execute(PUBLISHED_DDL)
        cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"publish:{policy}:{period_month}",))
        cur.execute(
            f"select policy_version, {', '.join(SNAPSHOT_COLUMNS)} from marts.fct_customer_tiers"
            " where policy = %s and period_month = %s order by customer_key",
            (policy, period_month),
        )
        candidate = cur.fetchall()
        if not candidate:
            raise RuntimeError(f"nothing to publish for {policy} {period_month:%Y-%m}: marts.fct_customer_tiers has no rows")
        versions = {row[0] for row in candidate}
        if len(versions) != 1:
            raise RuntimeError(f"{policy} {period_month:%Y-%m} mixes policy versions {sorted(versions)}")
        (version,) = versions
        snapshot = [row[1:] for row in candidate]
        snapshot_hash = digest(snapshot)
        cur.execute("select sha256 from raw.policy_versions where policy = %s and version = %s", (policy, version))
        policy_sha = cur.fetchone()[0]
        cur.execute(
            "select * from marts.fct_customer_features where policy = %s and period_month = %s order by customer_period_id",
            (policy, period_month),
        )
        input_fingerprint = digest([(policy_sha,), *cur.fetchall()])

        cur.execute(
            "select run_id, snapshot_hash from history.grading_runs"
            " where policy = %s and policy_version = %s and period_month = %s and list_kind = 'initial'",
            (policy, version, period_month),
        )
        existing = cur.fetchone()
        if existing and existing[1] == snapshot_hash:
            return PublishOutcome(str(existing[0]), "unchanged", len(snapshot), snapshot_hash)
        if existing:
            cur.execute("select customer_key, tier from history.tier_snapshots where run_id = %s", (existing[0],))
            published = dict(cur.fetchall())
            changed = sum(1 for row in snapshot if published.get(row[0]) != row[1]) + len(
                set(published) - {r[0] for r in snapshot}
            )
            candidate_id = str(uuid.uuid4())
            cur.execute(
                "insert into history.restatement_candidates (candidate_id, published_run_id, input_fingerprint, snapshot_hash,"
                " changed_customers, airflow_run_id) values (%s, %s, %s, %s, %s, %s)",
                (candidate_id, existing[0], input_fingerprint, snapshot_hash, changed, airflow_run_id),
            )
            return PublishOutcome(str(existing[0]), "restatement_candidate", len(snapshot), snapshot_hash)

        run_id, _ = record_run(
            cur, policy, version, period_month, "initial", airflow_run_id, policy_sha, input_fingerprint, snapshot
        )
        publish_run(cur, run_id)
        return PublishOutcome(run_id, "published", len(snapshot), snapshot_hash)


def record_run(
    cur,
    policy: str,
    version: int,
    period_month: date,
    list_kind: str,
    airflow_run_id: str | None,
    policy_sha: str,
    input_fingerprint: str,
    snapshot: list[tuple],
) -> tuple[str, str]:
    run_id, snapshot_hash = str(uuid.uuid4()), digest(snapshot)
    cur.execute(
        "insert into history.grading_runs (run_id, policy, policy_version, period_month, list_kind, airflow_run_id,"
        " code_version, policy_sha256, input_fingerprint, snapshot_hash, row_count)"
        " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (run_id, policy, version, period_month, list_kind, airflow_run_id, code_version(), policy_sha, input_fingerprint,
         snapshot_hash, len(snapshot)),
    )  # fmt: skip
    cur.executemany(
        f"insert into history.tier_snapshots (run_id, {', '.join(SNAPSHOT_COLUMNS)})"
        f" values (%s, {', '.join(['%s'] * len(SNAPSHOT_COLUMNS))})",
        [(run_id, *row) for row in snapshot],
    )
    return run_id, snapshot_hash


def publish_run(cur, run_id: str) -> None:
    """Make a recorded run the published list of its policy and period (inside the caller's transaction)."""
    cur.execute("select policy, period_month from history.grading_runs where run_id = %s", (run_id,))
    policy, period_month = cur.fetchone()
    cur.execute("delete from published.customer_tiers where policy = %s and period_month = %s", (policy, period_month))
    cur.execute(
        f"""
        insert into published.customer_tiers
            (policy, policy_version, period_month, list_kind, tier_label, {", ".join(SNAPSHOT_COLUMNS)}, airflow_run_id)
        select r.policy, r.policy_version, r.period_month, r.list_kind, t.tier_label, {", ".join("s." + c for c in SNAPSHOT_COLUMNS)},
               r.airflow_run_id
        from history.tier_snapshots as s
        join history.grading_runs as r using (run_id)
        left join marts.dim_policy_tiers as t
            on t.policy = r.policy and t.policy_version = r.policy_version and t.tier = s.tier
        where s.run_id = %s
        """,
        (run_id,),
    )


def previous_distribution(url: WarehouseUrl, policy: str, period_month: date, tiers: list[str]) -> dict | None:
    """The tier shares of the policy's published initial list for the month before, smoothed so
    that a tier empty last month does not make the divergence infinite; None when there is none."""
    previous_month = (period_month.replace(day=1) - timedelta(days=1)).replace(day=1)
    with connect(url) as conn, conn.cursor() as cur:
        ensure_schema(cur)
        cur.execute(
            "select s.tier, count(*) from history.tier_snapshots as s join history.grading_runs as r using (run_id)"
            " where r.policy = %s and r.period_month = %s and r.list_kind = 'initial' group by s.tier",
            (policy, previous_month),
        )
        counts = dict(cur.fetchall())
    if not counts:
        return None
    total = sum(counts.values()) + 0.5 * len(tiers)
    return {"values": tiers, "weights": [(counts.get(tier, 0) + 0.5) / total for tier in tiers]}


def customer_history(url: WarehouseUrl, customer_key: str) -> list[dict]:
    """Every recorded grade of one customer, oldest first, with the run that produced it."""
    with connect(url) as conn, conn.cursor() as cur:
        ensure_schema(cur)
        cur.execute(
            """
            select r.period_month, r.policy, r.policy_version, r.list_kind, s.tier, s.decided_by,
                   r.run_id, r.airflow_run_id, r.code_version, r.snapshot_hash, r.created_at
            from history.tier_snapshots as s
            join history.grading_runs as r using (run_id)
            where s.customer_key = %s
            order by r.period_month, r.policy, r.created_at
            """,
            (customer_key,),
        )
        names = [d.name for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def format_history(customer_key: str, rows: list[dict]) -> str:
    if not rows:
        return f"no recorded grades for {customer_key!r}"
    lines = [f"Grading history of {customer_key}"]
    for row in rows:
        lines.append(
            f"{row['period_month']:%Y-%m} {row['policy']} v{row['policy_version']} {row['list_kind']:<9} {row['tier']:<10}"
            f" {row['decided_by']}  [run {str(row['run_id'])[:8]}, airflow {row['airflow_run_id'] or '-'},"
            f" code {row['code_version'][:10]}, hash {row['snapshot_hash'][:12]}]"
        )
    return "\n".join(lines)
