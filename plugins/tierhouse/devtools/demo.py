"""The demo scenario behind `make demo`: a migrated warehouse, sample data, the real DAGs
(ingest, a backfill of July to October 2026, review, the quarterly re-grade, appeals), one review,
one approval (P2) and one appeal, then the tier summaries, every recorded list, what each role sees, one
customer's history and the grading report (HTML). Every step is idempotent in the product's own
terms, so a second demo in the same checkout succeeds and prints the same lists."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta

from tierhouse import settings
from tierhouse.errors import TierhouseError
from tierhouse.periods import parse_period
from tierhouse.warehouse.connection import WarehouseUrl, connect, login_url
from tierhouse.warehouse.migrate import migrate_and_report

#: The generator's default end: data runs through October 2026, so October is the demo period.
DEMO_DATA_END = date(2026, 11, 1)
DEMO_PERIOD = "2026-10"
DEMO_QUARTER_END = "2026-09"
DEMO_BACKFILL = {"start": "2026-07", "end": DEMO_PERIOD}
#: The policies the demo's review, appeal and summaries use.
DEMO_POLICIES = ("highend_flower", "service_levels", "abcd")


class DemoConfigError(TierhouseError, ValueError):
    """The deployment configuration leaves out what the demo's sample data needs."""


def check_demo_config() -> None:
    """The demo generates every source into the landing area and grades the shipped policies:
    tierhouse.yml (when there is one) must enable each source at its default place and grade them."""
    from tierhouse.ingest.sources import SOURCES
    from tierhouse.orchestration.config import load_config

    config = load_config()
    moved = [
        name for name, source in config.sources.items()
        if not source.enabled or source.connection or (name in SOURCES and source.landing_dir != settings.DATA_DIR / SOURCES[name].subdir)
    ]  # fmt: skip
    left_out = [name for name in DEMO_POLICIES if name not in config.policies]
    if moved or left_out:
        changed = ", ".join([*(f"source {name}" for name in moved), *(f"policy {name}" for name in left_out)])
        raise DemoConfigError(
            f"the demo needs every source enabled at its default place and the shipped policies graded, but {config.label}"
            f" changes {changed}; run it with TIERHOUSE_CONFIG naming a file that does not exist, or without tierhouse.yml"
        )


def run_demo(url: WarehouseUrl, customers: int, months: int, seed: int, verbose: bool = False) -> int:
    """Warehouse (migrated), sample data, the DAGs for real, then the tier summary; 0 on success."""
    from tierhouse.devtools.generate import generate
    from tierhouse.grading.policy import NO_TIER
    from tierhouse.grading.summary import format_summary, tier_summary
    from tierhouse.ingest.loaders import format_load_report, load_report, seed_shop_database
    from tierhouse.lifecycle.appeals import answer_appeal, appeal_states, file_appeal
    from tierhouse.lifecycle.history import customer_history, format_history, format_lists
    from tierhouse.lifecycle.report import collect, default_path, write_report
    from tierhouse.lifecycle.review import add_review, approval_states, approve, review_window
    from tierhouse.orchestration.local_airflow import LocalAirflow, dags_test
    from tierhouse.privacy.access import format_role_check

    check_demo_config()
    started = time.monotonic()
    print(f"[demo] warehouse {url.redacted()}")
    for line in migrate_and_report(url):
        print(f"[demo] {line}")
    data_dir = settings.DATA_DIR
    wanted = {"customers": customers, "months": months, "seed": seed, "end": DEMO_DATA_END.isoformat()}
    marker = data_dir / ".generated.json"
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        print(f"[demo] sample data in {data_dir} already generated with {wanted}")
    else:
        counts = generate(data_dir, customers, months, seed, DEMO_DATA_END)
        marker.write_text(json.dumps(wanted))
        print(f"[demo] generated {counts}")
    print(f"[demo] shop database holds {seed_shop_database(url, data_dir / 'shop')} online orders")

    airflow = LocalAirflow(url)

    def run(dag_id: str, logical_date: str | None = None, conf: dict | None = None) -> bool:
        print(f"[demo] airflow dags test {dag_id} {logical_date or ''} {json.dumps(conf) if conf else ''}", flush=True)
        result = dags_test(airflow, dag_id, logical_date, conf, echo=verbose)
        print(f"[demo] {dag_id}: {result.state} (run {result.run_id})")
        if not result.succeeded:
            print(result.output[-8000:])
        return result.succeeded

    # The ingest run for 2 Nov loads the business day of 1 Nov, which completes October; the
    # backfill then grades July to October in order (P2 and P3 list September, a quarter end).
    if not (run("tierhouse_ingest", "2026-11-02") and run("tierhouse_backfill", conf=DEMO_BACKFILL)):
        return 1
    print()
    print(format_load_report(load_report(login_url(url, "ingest"))))

    # The review and the appeal are recorded once: a second demo in the same warehouse reports
    # what the first recorded (the product refuses a review of a confirmed list, rightly). Both
    # customers come from the initial list, which no later list changes.
    p1, october = "highend_flower", parse_period(DEMO_PERIOD)
    # each step as the login of its job, as a person or a DAG task would run it
    review_url, publish_url = login_url(url, "review"), login_url(url, "publish")
    with connect(review_url) as conn, conn.cursor() as cur:
        cur.execute(
            "select min(s.customer_key) filter (where s.tier = %s), min(s.customer_key) filter (where s.tier = 'potential')"
            " from history.tier_snapshots as s join history.grading_runs as r using (run_id)"
            " where r.policy = %s and r.period_month = %s and r.list_kind = 'initial'",
            (NO_TIER, p1, october),
        )
        reviewed, appellant = cur.fetchone()
        cur.execute(
            "select exists (select 1 from history.reviews where policy = %s and period_month = %s and customer_key = %s)",
            (p1, october, reviewed),
        )
        (review_recorded,) = cur.fetchone()
    if review_recorded:
        print(f"\n[demo] review: {reviewed} none -> potential on the {DEMO_PERIOD} initial list, recorded before (Art. 8)")
    else:
        add_review(
            review_url,
            p1,
            october,
            reviewed,
            "potential",
            "Demo Reviewer",
            "wedding season pipeline confirmed by the store manager",
        )
        print(f"\n[demo] review: {reviewed} none -> potential on the {DEMO_PERIOD} initial list (Art. 8)")
    # P2 (seed 001, "评估结果经相关部门审核确认后"): the quarter-end list of service_levels takes
    # effect only once an approver approves it, never by time-out; recorded once, like the review.
    p2, quarter_end = "service_levels", parse_period(DEMO_QUARTER_END)
    state = next(s for s in approval_states(review_url) if (s.policy, s.period_month) == (p2, quarter_end))
    if state.approver:
        print(
            f"[demo] approval: {p2} {DEMO_QUARTER_END} list approved before by {state.approver} on {state.approved_at:%Y-%m-%d}"
        )
    else:
        print(f"[demo] approval: {p2} {DEMO_QUARTER_END} list {state.status}, not in force (window closes {state.deadline})")
        approve(review_url, p2, quarter_end, "Demo Service Director", "levels checked against the key-account plan")
        print(f"[demo] approval: {p2} {DEMO_QUARTER_END} list approved by Demo Service Director; now in force")
    # The review window is 5 mainland-China working days from the initial list; the review DAG is
    # run as of the day after it closes, which confirms every list published above that needs no
    # approval (and fails while an approval is overdue).
    _, deadline = review_window(review_url, p1, october)
    if not run("tierhouse_review", (deadline + timedelta(days=1)).isoformat()):
        return 1
    if not run("tierhouse_quarterly", conf={"quarter_end": DEMO_QUARTER_END}):
        return 1
    filed = next(
        (a for a in appeal_states(review_url) if (a.policy, a.period_month, a.customer_key) == (p1, october, appellant)), None
    )
    appeal_id, due_on = (filed.appeal_id, filed.due_on) if filed else file_appeal(
        review_url, p1, october, appellant, "customer says a wedding order booked as a guest checkout is missing", "Demo Service Desk"
    )  # fmt: skip
    if filed and filed.outcome:
        print(f"[demo] appeal {appeal_id[:8]}: {appellant} on the {DEMO_PERIOD} list, answered before ({filed.outcome})")
    else:
        answer_appeal(
            review_url, appeal_id, "Demo Service Lead",
            "guest-checkout order matched to the member by phone; spend and frequency meet the high tier", new_tier="high",
        )  # fmt: skip
        print(f"[demo] appeal {appeal_id[:8]}: {appellant} potential -> high on the {DEMO_PERIOD} list, answered before {due_on}")
    if not run("tierhouse_appeals", datetime.now().strftime("%Y-%m-%d")):
        return 1

    for policy, period in (
        (p1, DEMO_QUARTER_END), (p1, DEMO_PERIOD), ("service_levels", DEMO_QUARTER_END), ("abcd", DEMO_QUARTER_END)
    ):  # fmt: skip
        print()
        print(format_summary(policy, parse_period(period), tier_summary(publish_url, policy, parse_period(period))))
    print()
    print(format_lists(login_url(url, "audit")))
    print()
    print(format_role_check(url))
    print()
    print(format_history(appellant, customer_history(review_url, appellant)))
    print()
    # the managers' page: the quarter end (all three policies) and the latest month (P1's review and appeal)
    for period in (DEMO_QUARTER_END, DEMO_PERIOD):
        month = parse_period(period)
        print(f"[demo] report {period}: {write_report(collect(url, month), default_path(month))}")
    print(f"\n[demo] done in {time.monotonic() - started:.0f} s")
    return 0
