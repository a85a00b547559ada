"""`tierhouse simulate`: an edited policy graded in scratch relations by the real dbt models and
compared with the published list in force; nothing published or recorded.

Known answers: P2 raising level 1's composite cut from 80 to 85 moves exactly the published
level-1 customers whose composite lies in [80, 85) to level 2, and nobody else; P1 and P3 edits
are checked customer for customer against the independent pandas grader on the edited policy."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.support import GradedWarehouse, query
from tests.test_cli import assert_one_line_error, tierhouse
from tierhouse.devtools import reference_grading as ref
from tierhouse.grading import policy as policies
from tierhouse.grading.simulate import NOT_LISTED, SIMULATION_PREFIX, read_edited_policy, simulate
from tierhouse.periods import parse_period
from tierhouse.warehouse.connection import WarehouseUrl

pytestmark = pytest.mark.e2e

#: Every table a simulation must leave as it was
UNTOUCHED = (
    "published.customer_tiers",
    "history.grading_runs",
    "history.tier_snapshots",
    "history.tier_changes",
    "history.restatement_candidates",
    "raw.policy_versions",
    "raw.policy_tier_conditions",
    "raw.policy_score_bands",
)


def edited_copy(tmp_path: Path, name: str, old: str, new: str) -> Path:
    text = (policies.settings.POLICIES_DIR / name / "v1.yml").read_text()
    assert text.count(old) == 1, old
    path = tmp_path / f"{name}-draft.yml"  # anywhere, named anyhow: only the content is checked
    path.write_text(text.replace(old, new))
    return path


def counts(url: WarehouseUrl) -> dict[str, int]:
    return {table: query(url, f"select count(*) from {table}")[0][0] for table in UNTOUCHED}


def scratch_relations(url: WarehouseUrl) -> list[tuple]:
    return query(url, "select schemaname, tablename from pg_tables where starts_with(tablename, %s)", (SIMULATION_PREFIX,))


def in_force(url: WarehouseUrl, name: str, period: str) -> pd.DataFrame:
    rows = query(
        url,
        "select customer_key, tier, composite_score from published.customer_tiers where policy = %s and period_month = %s",
        (name, parse_period(period)),
    )
    return pd.DataFrame(rows, columns=["customer_key", "tier", "composite_score"])


def expected_moves(url: WarehouseUrl, edited: policies.Policy, period: str) -> dict[tuple[str, str], int]:
    """(from, to) -> customers, from the pandas grader on the edited policy against the published list."""
    graded = ref.grade(ref.load(url), edited, parse_period(period))[["customer_key", "tier"]]
    merged = in_force(url, edited.name, period).merge(graded, on="customer_key", how="outer", suffixes=("_in_force", "_sim"))
    merged = merged.fillna({"tier_in_force": NOT_LISTED, "tier_sim": NOT_LISTED})
    moved = merged[merged["tier_in_force"] != merged["tier_sim"]]
    return {pair: int(n) for pair, n in moved.groupby(["tier_in_force", "tier_sim"]).size().items()}


def test_p2_raising_level_1_moves_exactly_the_customers_between_the_cuts(
    graded_warehouse: GradedWarehouse, tmp_path: Path
) -> None:
    url, period = graded_warehouse.url, graded_warehouse.period
    published = in_force(url, "service_levels", period)
    between = published[(published["tier"] == "level_1") & (published["composite_score"] < 85)]
    assert 0 < len(between) < (published["tier"] == "level_1").sum(), "the data must put level-1 customers on both sides of 85"
    before = counts(url)

    draft = edited_copy(tmp_path, "service_levels", 'all: ["composite_score >= 80"]', 'all: ["composite_score >= 85"]')
    sim = simulate(url, read_edited_policy(draft), parse_period(period))

    assert {(m.from_tier, m.to_tier): m.customers for m in sim.moves} == {("level_1", "level_2"): len(between)}
    assert sim.unchanged == len(published) - len(between)
    by_tier = {row.tier: row for row in sim.distribution}
    assert by_tier["level_1"].simulated == by_tier["level_1"].in_force - len(between)
    assert by_tier["level_2"].simulated == by_tier["level_2"].in_force + len(between)
    nearest = [n for n in sim.nearest if n.tier == "level_1"]
    assert nearest and all(n.condition == "composite_score >= 85" and n.previous_threshold == 80 for n in nearest)
    assert [abs(n.gap) for n in nearest] == sorted(abs(n.gap) for n in nearest)
    assert counts(url) == before, "a simulation wrote to published, history or raw"
    assert scratch_relations(url) == []


@pytest.mark.parametrize(
    ("name", "old", "new"),
    [
        ("highend_flower", "- spend >= 100000", "- spend >= 150000"),
        ("abcd", 'all: ["spend > 100000"]', 'all: ["spend > 60000"]'),
    ],
)
def test_p1_and_p3_edits_move_whom_the_reference_grader_moves(
    graded_warehouse: GradedWarehouse, tmp_path: Path, name: str, old: str, new: str
) -> None:
    url, period = graded_warehouse.url, graded_warehouse.period
    before = counts(url)
    edited = read_edited_policy(edited_copy(tmp_path, name, old, new))
    sim = simulate(url, edited, parse_period(period))
    moves = {(m.from_tier, m.to_tier): m.customers for m in sim.moves}
    assert moves == expected_moves(url, edited, period)
    assert moves, "the edit must move someone, or the comparison proves nothing"
    assert counts(url) == before
    assert scratch_relations(url) == []


def test_the_unedited_policy_reproduces_the_graded_models(graded_warehouse: GradedWarehouse, tmp_path: Path) -> None:
    """The scratch build is the real grading: unedited, it gives what marts.fct_customer_tiers holds."""
    url, period = graded_warehouse.url, graded_warehouse.period
    shipped = policies.settings.POLICIES_DIR / "highend_flower" / "v1.yml"
    sim = simulate(url, read_edited_policy(shipped), parse_period(period))
    built = query(
        url,
        "select tier, count(*) from marts.fct_customer_tiers where policy = 'highend_flower' and period_month = %s group by tier",
        (parse_period(period),),
    )
    assert {row.tier: row.simulated for row in sim.distribution if row.simulated} == dict(built)


def test_a_bad_or_unknown_edited_policy_is_one_line(tmp_path: Path) -> None:
    bad = edited_copy(tmp_path, "abcd", 'all: ["spend > 100000"]', 'all: ["spending > 100000"]')
    result = tierhouse("simulate", "--policy", str(bad), "--period", "2026-09")
    assert_one_line_error(result, result.stderr.strip().removeprefix("tierhouse: "))
    assert result.stderr.startswith(f"tierhouse: {bad}: scores.spend.bands[0].all[0]: unknown indicator 'spending'")
    unknown = tmp_path / "draft.yml"
    unknown.write_text(bad.read_text().replace("policy: abcd", "policy: no_such_policy").replace("spending", "spend"))
    assert_one_line_error(
        tierhouse("simulate", "--policy", str(unknown), "--period", "2026-09"), "no policy file for 'no_such_policy'"
    )
    missing = tmp_path / "missing.yml"
    assert_one_line_error(
        tierhouse("simulate", "--policy", str(missing), "--period", "2026-09"), f"no such policy file: {missing}"
    )
