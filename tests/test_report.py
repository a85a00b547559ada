"""`tierhouse report`: what the page says agrees with the published lists and history, and the page
renders in a real headless Chromium (Debian's chromium + chromium-driver, installed by `make
browser`, which `make test` runs first): every chart drawn, no console error, a screenshot kept
in tests/artifacts/ (ignored by git) for a person to look at."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from tests.support import query
from tests.test_cli import assert_one_line_error, tierhouse
from tierhouse.devtools.generate import generate
from tierhouse.grading import policy, quality
from tierhouse.grading.transform import run_dbt
from tierhouse.ingest import loaders
from tierhouse.ingest.sources import SOURCES
from tierhouse.lifecycle import appeals, docs, publish, report, review
from tierhouse.privacy import access
from tierhouse.settings import PROJECT_ROOT
from tierhouse.warehouse.connection import WarehouseUrl, login_passwords, login_url, session
from tierhouse.warehouse.migrate import migrate

pytestmark = pytest.mark.e2e
PERIOD = date(2026, 9, 1)
#: (policy, period) published as initial lists: P1 monthly, P2 and P3 at quarter ends
LISTS = (("highend_flower", date(2026, 8, 1)), ("highend_flower", PERIOD), ("service_levels", date(2026, 6, 1)),
         ("service_levels", PERIOD), ("abcd", PERIOD))  # fmt: skip
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts"


def _admin(url: WarehouseUrl, statement: str) -> None:
    with session(url) as conn:
        conn.autocommit = True
        conn.cursor().execute(statement)


@pytest.fixture(scope="module")
def listed(server_url: WarehouseUrl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WarehouseUrl]:
    """A small warehouse with consecutive published lists, a confirmed list and an open appeal."""
    name = f"tierhouse_report_{uuid.uuid4().hex[:8]}"
    _admin(server_url, f'create database "{name}"')
    url = dataclasses.replace(server_url, dbname=name)
    try:
        migrate(url)
        data = tmp_path_factory.mktemp("report-data")
        generate(data, 150, 24, 5, date(2026, 11, 1))
        loaders.seed_shop_database(url, data / "shop")
        for source in SOURCES.values():
            loaders.load_exports(url, source, data / source.subdir)
        loaders.extract_shop_orders(url)
        policy.load_policies(url, policy.discover())
        access.apply(url)
        # dbt's own target folder, so the project's manifest (Cosmos reads it) is left alone
        target = ("--target-path", str(tmp_path_factory.mktemp("dbt-target")))
        assert run_dbt(url, "seed", "--quiet", *target).returncode == 0
        assert run_dbt(url, "run", "--quiet", *target).returncode == 0
        publisher, reviewer = login_url(url, "publish"), login_url(url, "review")
        for name_, month in LISTS:
            publish.publish_initial_list(publisher, name_, month)
        customer, tier = query(
            url, "select customer_key, tier from published.customer_tiers where policy = 'highend_flower'"
            " and period_month = %s and tier = 'none' order by customer_key limit 1", (PERIOD,),
        )[0]  # fmt: skip
        review.add_review(reviewer, "highend_flower", PERIOD, customer, "potential", "Test Reviewer", "store manager's word")
        review.confirm_due_lists(reviewer, date(2027, 1, 31))  # every window has closed by then
        for month in (date(2026, 6, 1), PERIOD):  # P2's lists take effect once approved, never by time-out
            review.approve(reviewer, "service_levels", month, "Test Approver", "levels checked")
        appeals.file_appeal(reviewer, "highend_flower", PERIOD, customer, "re-check my grade", "Test Desk")
        yield url
    finally:
        _admin(server_url, f'drop database if exists "{name}" with (force)')


def test_the_report_says_what_published_and_history_hold(listed: WarehouseUrl) -> None:
    made = report.collect(listed, PERIOD)
    assert [p.policy for p in made.policies] == ["abcd", "highend_flower", "service_levels"]
    for p in made.policies:
        published = dict(
            query(
                listed,
                "select tier, count(*) from published.customer_tiers where policy = %s and period_month = %s group by tier",
                (p.policy, PERIOD),
            )
        )
        assert p.distribution == published
        if p.previous_period is None:
            assert p.policy == "abcd" and p.matrix == {}
            continue
        before = dict(
            query(
                listed,
                "select tier, count(*) from published.customer_tiers where policy = %s and period_month = %s group by tier",
                (p.policy, p.previous_period),
            )
        )
        rows, columns = Counter(), Counter()
        for (was, now), n in p.matrix.items():
            rows[was] += n
            columns[now] += n
        # every customer of both lists is in the matrix once: its margins are the two lists
        assert {t: n for t, n in rows.items() if t != report.NOT_LISTED} == before
        assert {t: n for t, n in columns.items() if t != report.NOT_LISTED} == published
        ranks = {code: rank for code, _, rank in p.tiers}
        up = query(
            listed,
            "select count(*) from published.customer_tiers as b join published.customer_tiers as n using (policy, customer_key)"
            " where b.policy = %s and b.period_month = %s and n.period_month = %s and n.tier_rank < b.tier_rank",
            (p.policy, p.previous_period, PERIOD),
        )[0][0]
        assert p.moved_up == up and p.moved_up + p.moved_down <= sum(n for (a, b), n in p.matrix.items() if a != b)
        assert set(ranks) >= set(published)
    assert {p.policy: p.previous_period for p in made.policies} == {
        "abcd": None, "highend_flower": date(2026, 8, 1), "service_levels": date(2026, 6, 1)
    }  # fmt: skip
    kinds = sorted((policy_, kind) for policy_, _, kind, *_ in made.runs)
    assert kinds == [("abcd", "initial"), ("highend_flower", "confirmed"), ("highend_flower", "initial"),
                     ("service_levels", "approved"), ("service_levels", "initial")]  # fmt: skip
    # P1 and P2 have review windows, P3 has none; every list was confirmed by the review job or approved
    assert {(r.policy, f"{r.period_month:%Y-%m}") for r in made.reviews} == {
        ("highend_flower", "2026-08"), ("highend_flower", "2026-09"), ("service_levels", "2026-06"), ("service_levels", "2026-09")
    }  # fmt: skip
    assert {r.status for r in made.reviews} == {"on time"}
    assert [(a.policy, a.status) for a in made.appeals] == [("highend_flower", "open")]
    # the raw-data gate as it stands when the report is made (its freshness depends on today's date)
    assert [(c.checkpoint, c.success) for c in made.checks] == [("ingest_raw", raw_gate_passes_now(listed))]
    assert {r.source for r in made.loads} >= {"pos", "crm"}


def test_the_page_renders_every_chart_in_headless_chromium(listed: WarehouseUrl, tmp_path: Path) -> None:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("headless Chromium not installed (`make browser` installs Debian's chromium and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    page = report.write_report(report.collect(listed, PERIOD), tmp_path / "report.html")
    text = page.read_text()
    # plotly's JavaScript is inlined: no script or stylesheet is fetched (the bundle itself names
    # CDN addresses, for features the page does not use, so the text is not searched for them)
    assert not re.search(r"<script[^>]*\bsrc=|<link[^>]*\bhref=", text), "the page must open without a network"

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get(page.as_uri())
        charts = browser.find_elements("css selector", ".plotly-graph-div")
        # 3 policies x (distribution, trend) + 2 matrices + reviews + appeals + loads
        assert len(charts) == 11
        # every chart drew its svg and at least one mark (bar, point or heatmap image) in it
        marks = ".point, .bars path, .heatmaplayer image, .hm image"
        drawn = (
            f"return [...document.querySelectorAll('.plotly-graph-div')].filter(d => !d.querySelector('{marks}')).map(d => d.id)"
        )
        WebDriverWait(browser, 30).until(lambda b: b.execute_script(drawn) == [])
        assert all(chart.find_elements("css selector", "svg.main-svg") for chart in charts)
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1440, height)
        time.sleep(1)  # the charts follow the window's new size (plotly's responsive resize)
        requests = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
        fetched = [m["params"]["request"]["url"] for m in requests if m["method"] == "Network.requestWillBeSent"]
        assert [url for url in fetched if not url.startswith(("file:", "data:", "blob:"))] == [], (
            "the page fetched from a network"
        )
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / f"report-{PERIOD:%Y-%m}.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 50_000
    finally:
        browser.quit()


def test_a_period_without_a_list_is_one_line(listed: WarehouseUrl) -> None:
    result = tierhouse("report", "--period", "2026-07", "--policy", "abcd", warehouse=listed)
    assert_one_line_error(result, "no published abcd list for 2026-07; grade the period first")


def raw_gate_passes_now(url: WarehouseUrl) -> bool:
    return quality.run_checkpoint(login_url(url, "gate"), "ingest_raw").success


def test_make_docs_builds_dbt_docs_and_data_docs_the_report_links(
    listed: WarehouseUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = docs.build_docs(listed, tmp_path / "dbt", tmp_path / "site" / "data_docs")
    assert "fct_customer_tiers" in built.dbt_docs.read_text()
    # ingest_raw; each policy's newest list; drift where an earlier list exists (P1 2026-08, P2 2026-06)
    assert [(c.checkpoint, c.success) for c in built.checks] == [("ingest_raw", raw_gate_passes_now(listed))] + [
        ("publish_customer_tiers", True), ("publish_customer_tiers", True), ("publish_tier_drift", True),
        ("publish_customer_tiers", True), ("publish_tier_drift", True),
    ]  # fmt: skip
    index = built.data_docs.read_text()
    validations = list((built.data_docs.parent / "validations").rglob("*.html"))
    assert len(validations) == 7 + 3 + 2  # one page per validation: seven raw tables, three tier audits, two drift audits
    assert "raw_pos_sales_lines" in index and "publish_tier_drift" in index
    secrets = [*login_passwords().values(), listed.password]
    for page in built.data_docs.parent.rglob("*"):
        if page.is_file():
            text = page.read_text(errors="replace")
            assert not any(secret and secret in text for secret in secrets), f"{page} holds a password"

    monkeypatch.setattr(report, "DBT_DOCS", built.dbt_docs)
    monkeypatch.setattr(report, "DATA_DOCS", built.data_docs)
    page = report.write_report(report.collect(listed, PERIOD, run_checks=False), tmp_path / "reports" / "r.html")
    hrefs = re.findall(r'<a href="([^"]+)">', page.read_text())
    assert len(hrefs) == 2 and all((page.parent / href).resolve().is_file() for href in hrefs), hrefs


def test_the_migration_and_distribution_marts_agree_with_the_initial_lists(listed: WarehouseUrl, tmp_path: Path) -> None:
    """The marts' unit and data tests pass, and on real data they say what the initial lists in
    history say (the marts are the grading as computed: before reviews and appeals)."""
    marts = ("fct_tier_distribution", "fct_tier_migrations")
    assert run_dbt(listed, "test", "--quiet", "--select", *marts, "--target-path", str(tmp_path)).returncode == 0
    initial = """
        with s as (
            select r.period_month, s.customer_key, s.tier from history.tier_snapshots as s
            join history.grading_runs as r using (run_id) where r.policy = %(policy)s and r.list_kind = 'initial'
        )
        select coalesce(b.tier, '-'), coalesce(n.tier, '-'), count(*)
        from (select * from s where period_month = %(before)s) as b
        full join (select * from s where period_month = %(now)s) as n using (customer_key)
        group by 1, 2
    """
    for name, before in (("highend_flower", date(2026, 8, 1)), ("service_levels", date(2026, 6, 1))):
        expected = {(a, b): n for a, b, n in query(listed, initial, {"policy": name, "before": before, "now": PERIOD})}
        actual = query(
            listed,
            "select coalesce(from_tier, '-'), coalesce(to_tier, '-'), customers, previous_month from marts.fct_tier_migrations"
            " where policy = %s and period_month = %s",
            (name, PERIOD),
        )
        assert {(a, b): n for a, b, n, _ in actual} == expected
        assert {previous for *_, previous in actual} == {before}  # P2 pairs quarter ends: June with September
    distribution = query(
        listed, "select tier, customers from marts.fct_tier_distribution where policy = 'abcd' and period_month = %s", (PERIOD,)
    )
    published = query(
        listed, "select tier, count(*) from published.customer_tiers where policy = 'abcd' and period_month = %s group by tier",
        (PERIOD,),
    )  # fmt: skip
    assert dict(distribution) == dict(published)
