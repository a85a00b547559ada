"""Policy files are validated on load with a message that names the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support import query
from tierhouse import settings
from tierhouse.grading import policy

SHIPPED = settings.POLICIES_DIR / "highend_flower" / "v1.yml"


def write_policy(tmp_path: Path, doc: dict, name: str = "highend_flower", version: int = 1) -> Path:
    path = tmp_path / name / f"v{version}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return path


def shipped_doc() -> dict:
    return yaml.safe_load(SHIPPED.read_text())


def test_shipped_p1_policy_parses_with_three_tiers_and_the_potential_routes() -> None:
    """000 Art. 6(三): near-high spend and repurchase intent are required; "或" joins only the big
    custom order and the customisation tendency."""
    p1 = policy.parse_policy(SHIPPED)
    assert [t.code for t in p1.tiers] == ["top", "high", "potential"]
    potential = p1.tiers[2]
    assert {c.condition_id for c in potential.conditions if c.match_group == "all"} == {"near_spend_band", "order_count"}
    assert {c.condition_id for c in potential.conditions if c.match_group == "any"} == {
        "single_big_order",
        "customisation_tendency",
    }
    assert p1.settings["window_months"] == 12


def test_p1_art9_rules_read_as_the_seed() -> None:
    """ "持续提升" needs spend and frequency up and purchases in two of the last three months;
    "消费频次大幅下降、需求缩减" needs both the sharp fall in frequency and the shrinking demand."""
    rules = {r.code: r for r in policy.parse_policy(SHIPPED).regrade_rules}
    rising = {(c.indicator, c.operator, c.threshold, c.match_group) for c in rules["potential_rising"].conditions}
    assert rising == {
        ("spend_growth", ">=", 0.2, "all"),
        ("order_growth", ">", 0, "all"),
        ("recent_active_months", ">=", 2, "all"),
    }
    falling = {(c.condition_id, c.indicator, c.operator, c.threshold, c.match_group) for c in rules["top_falling"].conditions}
    assert falling == {
        ("frequency_halved", "order_growth", "<=", -0.5, "all"),
        ("demand_shrinks", "spend_growth", "<", 0, "all"),
    }


def test_each_policy_names_the_grade_of_a_lapsed_customer(tmp_path: Path) -> None:
    by_name = {p.name: p.lapsed_tier for p in policy.discover()}
    assert by_name == {"highend_flower": "none", "service_levels": "level_4", "abcd": "D"}
    doc = shipped_doc()
    doc.pop("lapsed_tier")
    assert policy.parse_policy(write_policy(tmp_path, doc)).lapsed_tier == "none"
    doc["lapsed_tier"] = "gold"
    with pytest.raises(policy.PolicyError, match="lapsed_tier: 'gold' is neither a tier of this policy nor 'none'"):
        policy.parse_policy(write_policy(tmp_path, doc))


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (
            lambda d: d["tiers"]["top"]["all"].append("loyalty_points >= 3"),
            "tiers.top.all[5]",
            "unknown indicator 'loyalty_points'",
        ),
        (lambda d: d["tiers"]["high"]["all"].__setitem__(0, "spend => 3"), "tiers.high.all[0]", "cannot read condition"),
        (lambda d: d["tiers"]["high"].__setitem__("rank", 1), "tiers.high.rank", "unique positive integer"),
        (lambda d: d["settings"].__setitem__("window_months", 0), "settings.window_months", "positive number"),
        (lambda d: d.pop("effective_from"), "effective_from", "missing"),
        (lambda d: d.pop("tiers"), "tiers", "missing"),
        (lambda d: d.__setitem__("tiers", {}), "tiers", "non-empty mapping"),
        (lambda d: d["tiers"]["top"].__setitem__("colour", "gold"), "tiers.top", "unknown keys ['colour']"),
        (
            lambda d: d["tiers"]["potential"]["any"].append("order_count >= 3"),
            "tiers.potential",
            "condition ids ['order_count'] repeat",
        ),
        (lambda d: d.__setitem__("version", 2), "version", "file must be policies/highend_flower/v2.yml"),
        (lambda d: d["calendar"].__setitem__("cadence", "weekly"), "calendar.cadence", "one of ['monthly', 'quarterly']"),
        (lambda d: d["calendar"].__setitem__("appeal_working_days", 0), "calendar.appeal_working_days", "positive number"),
        (lambda d: d["regrade"].__setitem__("window_months", 13), "regrade.window_months", "from 1 to 12"),
        (
            lambda d: d["regrade"]["rules"]["potential_rising"].__setitem__("to", "gold"),
            "regrade.rules.potential_rising.to",
            "'gold' is not a tier",
        ),
        (
            lambda d: d["regrade"]["rules"]["top_falling"]["all"].append("spend >= 3"),
            "regrade.rules.top_falling.all[2]",
            "unknown indicator 'spend'",
        ),
        (
            lambda d: d["regrade"]["rules"]["top_falling"].__setitem__("from", "potential"),
            "regrade.rules",
            "two rules move customers off the same tier",
        ),
    ],
)
def test_bad_policy_is_rejected_naming_file_key_and_problem(tmp_path: Path, mutate, key: str, problem: str) -> None:
    doc = shipped_doc()
    mutate(doc)
    path = write_policy(tmp_path, doc)
    with pytest.raises(policy.PolicyError) as raised:
        policy.parse_policy(path)
    assert raised.value.key == key
    assert problem in raised.value.problem
    assert str(path) in str(raised.value)


P3 = settings.POLICIES_DIR / "abcd" / "v1.yml"


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (lambda d: d["scores"]["spend"].__setitem__("weight", -1), "scores.spend.weight", "must be a number >= 0"),
        (lambda d: d["scores"]["spend"]["bands"][2].__setitem__("all", ["spend >= 1"]), "scores.spend.bands[2]", "fallback"),
        (lambda d: d["scores"]["spend"]["bands"][0].pop("points"), "scores.spend.bands[0]", "numeric 'points'"),
        (lambda d: d["scores"]["spend"]["bands"][1].pop("all"), "scores.spend.bands[1]", "at least one condition"),
        (lambda d: d["tiers"]["A"]["all"].append("score.nope >= 1"), "tiers.A.all[2]", "unknown indicator 'score.nope'"),
        (
            lambda d: d["scores"]["spend"]["bands"][0]["all"].append("score.loyalty >= 3"),
            "scores.spend.bands[0].all[1]",
            "unknown indicator",
        ),
        (
            lambda d: d["scores"]["spend"]["bands"][1].__setitem__("band", "high"),
            "scores.spend.bands",
            "band names ['high'] repeat",
        ),
        (  # mid needs more than high: every customer it would take, high takes first
            lambda d: d["scores"]["spend"]["bands"][1].__setitem__("all", ["spend >= 200000"]),
            "scores.spend.bands[1]",
            "overlaps band 'high' entirely",
        ),
        (
            lambda d: d["scores"]["loyalty"]["bands"].__setitem__(
                slice(0, 2),
                [
                    {"band": "high", "points": 3, "any": ["tenure_months > 60", "repurchase_rate > 0.8"]},
                    {"band": "low", "points": 1, "any": ["tenure_months > 70", "repurchase_rate >= 0.9"]},
                ],
            ),
            "scores.loyalty.bands[1]",
            "overlaps band 'high' entirely",
        ),
        (lambda d: d["tiers"]["C"].__setitem__("all", ["composite_score >= 7"]), "tiers.C", "overlaps tier 'B' entirely"),
    ],
)
def test_bad_scores_are_rejected_naming_file_key_and_problem(tmp_path: Path, mutate, key: str, problem: str) -> None:
    doc = yaml.safe_load(P3.read_text())
    mutate(doc)
    with pytest.raises(policy.PolicyError) as raised:
        policy.parse_policy(write_policy(tmp_path, doc, name="abcd"))
    assert (raised.value.key, problem in raised.value.problem) == (key, True), raised.value


def test_composite_score_needs_weighted_scores(tmp_path: Path) -> None:
    doc = yaml.safe_load(P3.read_text())
    for score in doc["scores"].values():
        score["weight"] = 0
    with pytest.raises(policy.PolicyError, match="unknown indicator 'composite_score'"):
        policy.parse_policy(write_policy(tmp_path, doc, name="abcd"))


def test_shipped_policies_parse_with_their_documented_structure() -> None:
    shipped = {p.name: p for p in policy.discover()}
    assert set(shipped) == {"highend_flower", "service_levels", "abcd"}
    p2 = shipped["service_levels"]
    assert [s.name for s in p2.scores] == ["spend", "frequency", "credit", "relationship", "complexity"]
    assert abs(sum(s.weight for s in p2.scores) - 1) < 1e-9
    assert [t.code for t in p2.tiers] == ["level_1", "level_2", "level_3", "level_4"]
    p3 = shipped["abcd"]
    core = {s.name: s for s in p3.scores if s.weight}
    assert set(core) == {"spend", "frequency", "loyalty"}
    assert [(b.band, b.conditions[0].operator if b.conditions else None) for b in core["spend"].bands] == [
        ("high", ">"),
        ("mid", ">="),
        ("low", None),
    ]


def test_invalid_yaml_is_reported_as_such(tmp_path: Path) -> None:
    path = tmp_path / "highend_flower" / "v1.yml"
    path.parent.mkdir()
    path.write_text("policy: [unclosed\n")
    with pytest.raises(policy.PolicyError, match="not valid YAML"):
        policy.parse_policy(path)


def test_loading_writes_every_condition_and_setting(scratch_db) -> None:
    p1 = policy.parse_policy(SHIPPED)
    policy.load_policies(scratch_db, [p1])
    policy.load_policies(scratch_db, [p1])  # idempotent
    conditions = query(scratch_db, "select count(*) from raw.policy_tier_conditions")
    assert conditions == [(sum(len(t.conditions) for t in p1.tiers),)]
    assert query(scratch_db, "select value from raw.policy_settings where setting = 'big_ticket_order_min'") == [(5000,)]
    assert query(scratch_db, "select count(*) from raw.policy_regrade_conditions") == [
        (sum(len(r.conditions) for r in p1.regrade_rules),)
    ]


def test_a_published_version_cannot_be_silently_changed(scratch_db, tmp_path: Path) -> None:
    policy.load_policies(scratch_db, [policy.parse_policy(SHIPPED)])
    query(
        scratch_db,
        "insert into published.customer_tiers (policy, policy_version, period_month, customer_key, tier, tier_rank, decided_by)"
        " values ('highend_flower', 1, '2026-10-01', 'M000001', 'top', 1, 'top: all conditions met')",
    )
    doc = shipped_doc()
    doc["tiers"]["top"]["all"][0] = "spend >= 90000"
    changed = policy.parse_policy(write_policy(tmp_path, doc))
    with pytest.raises(policy.PolicyError, match="publish the change as a new version"):
        policy.load_policies(scratch_db, [changed])


def test_p1_art9_regrade_rules_and_calendars_come_from_the_policy_files() -> None:
    from datetime import date

    by_name = {p.name: p for p in policy.discover()}
    rules = {r.code: (r.from_tier, r.to_tier) for r in by_name["highend_flower"].regrade_rules}
    assert rules == {"potential_rising": ("potential", "high"), "top_falling": ("top", "high")}
    assert by_name["highend_flower"].settings["regrade_window_months"] == 3
    # P1 lists every month; P2 and P3 (quarterly by default) only at quarter ends
    assert all(by_name["highend_flower"].lists_month(date(2026, m, 1)) for m in range(1, 13))
    for name in ("service_levels", "abcd"):
        assert [m for m in range(1, 13) if by_name[name].lists_month(date(2026, m, 1))] == [3, 6, 9, 12]


def test_the_dags_grade_every_shipped_policy() -> None:
    from tierhouse.lifecycle.regrade import regraded_policies
    from tierhouse.orchestration.config import load_config
    from tierhouse.orchestration.defaults import REGRADED_POLICIES

    assert sorted(load_config().policies) == sorted({p.name for p in policy.discover()})
    assert [p.name for p in regraded_policies()] == REGRADED_POLICIES


def test_every_trend_indicator_a_regrade_rule_may_name_is_computed_by_dbt() -> None:
    sql = (settings.DBT_PROJECT_DIR / "models" / "marts" / "fct_regrade_signals.sql").read_text()
    for indicator in policy.TREND_INDICATORS:
        assert f"('{indicator}'," in sql, indicator


def test_every_indicator_a_policy_may_name_is_computed_by_dbt() -> None:
    sql = (settings.DBT_PROJECT_DIR / "models" / "intermediate" / "int_customer_indicator_values.sql").read_text()
    for indicator in policy.INDICATORS:
        assert f"('{indicator}'," in sql, indicator


def test_constants_shared_with_dbt_are_written_once_as_dbt_vars() -> None:
    """The no-tier code, label and rank, the score prefix, the composite and the policy-version key
    come from dbt_project.yml's vars on both sides: no model or macro writes their values itself."""
    from tierhouse.grading.dbt_vars import dbt_vars

    shared = dbt_vars()
    read_by_python = {"no_tier": policy.NO_TIER, "no_tier_rank": policy.NO_TIER_RANK}
    read_by_python |= {"score_indicator_prefix": policy.SCORE_PREFIX, "composite_indicator": policy.COMPOSITE}
    assert {name: shared[name] for name in read_by_python} == read_by_python
    assert policy.parse_policy(SHIPPED).policy_version_id == f"highend_flower{shared['policy_version_separator']}1"
    written_out = {
        "no_tier": f"'{shared['no_tier']}'",
        "no_tier_label": f"'{shared['no_tier_label']}'",
        "no_tier_rank": f", {shared['no_tier_rank']})",
        "score_indicator_prefix": f"'{shared['score_indicator_prefix']}",
        "composite_indicator": f"'{shared['composite_indicator']}'",
        "policy_version_separator": f"'{shared['policy_version_separator']}' || version",
    }
    dbt_dir = settings.DBT_PROJECT_DIR
    for path in [*(dbt_dir / "models").rglob("*.sql"), *(dbt_dir / "macros").glob("*.sql")]:
        sql = path.read_text()
        for name, literal in written_out.items():
            assert literal not in sql, f"{path.name} writes {name} itself; use var('{name}')"


def test_an_edited_version_that_graded_a_period_is_refused_by_the_ingest_task_before_anything_runs(
    scratch_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DAGs load the policy files (as the ingest login, which reads neither history nor
    published) before dbt builds anything: a version whose list is recorded may not change."""
    from tierhouse.orchestration import pipeline
    from tierhouse.privacy import access
    from tierhouse.warehouse.connection import login_url

    access.apply(scratch_db)
    ingest = login_url(scratch_db, "ingest")
    monkeypatch.setenv("AIRFLOW_CONN_TIERHOUSE_WAREHOUSE_INGEST", ingest.url())
    for shipped in settings.POLICIES_DIR.glob("*/v*.yml"):
        (tmp_path / shipped.parent.name).mkdir(exist_ok=True)
        (tmp_path / shipped.parent.name / shipped.name).write_bytes(shipped.read_bytes())
    monkeypatch.setattr(settings, "POLICIES_DIR", tmp_path)
    assert "highend_flower@1" in pipeline.load_policies()
    # v1 graded September: a recorded list (not yet published, e.g. a failed publish gate)
    query(
        scratch_db,
        "insert into history.grading_runs (run_id, policy, policy_version, period_month, list_kind, code_version,"
        " policy_sha256, input_fingerprint, snapshot_hash, row_count) values (gen_random_uuid(), 'highend_flower', 1,"
        " '2026-09-01', 'initial', 'test', 'sha', 'inputs', 'hash', 0)",
    )
    assert pipeline.load_policies()  # unchanged content loads again
    before = query(scratch_db, "select policy, version, sha256 from raw.policy_versions order by 1")
    doc = shipped_doc()
    doc["tiers"]["top"]["all"][0] = "spend >= 90000"
    write_policy(tmp_path, doc)
    with pytest.raises(policy.PolicyError) as refused:
        pipeline.load_policies()
    assert (refused.value.path, refused.value.key) == (tmp_path / "highend_flower" / "v1.yml", "version")
    assert "already loaded with different content; publish the change as a new version" in refused.value.problem
    assert query(scratch_db, "select policy, version, sha256 from raw.policy_versions order by 1") == before
