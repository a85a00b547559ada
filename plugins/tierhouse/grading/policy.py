"""Grading policies as versioned data files: parse, validate, and load into ``raw``.

A policy file is ``policies/<name>/v<version>.yml``. Tier rules are lists of conditions such as
``spend >= 100000`` over the indicators that ``int_customer_period_features`` computes; a tier is
met when all of its ``all`` conditions hold and, when it has ``any`` conditions, one of them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import yaml

from tierhouse import settings
from tierhouse.errors import TierhouseError
from tierhouse.grading.dbt_vars import dbt_var
from tierhouse.periods import QUARTER_END_MONTHS, add_months
from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.migrate import require_migrated

#: Indicators the dbt feature model provides (``int_customer_indicator_values``); a test checks
#: the two lists agree, so a rule cannot name an indicator that is never computed.
INDICATORS = frozenset(
    {
        "spend",
        "order_count",
        "big_ticket_orders",
        "big_ticket_share",
        "custom_share",
        "special_needs_share",
        "enterprise_share",
        "max_order_value",
        "avg_order_value",
        "active_months",
        "tenure_months",
        "repurchase_rate",
        "on_time_payment_share",
        "days_since_last_order",
    }
)
#: Indicators of the quarterly re-grade (``int_customer_quarter_trends``): the last
#: ``regrade.window_months`` months against the same number of months before them.
TREND_INDICATORS = frozenset(
    f"{when}_{measure}" for when in ("recent", "prior") for measure in ("spend", "orders", "special_orders")
) | frozenset({"spend_growth", "order_growth", "special_order_growth", "recent_active_months"})
CADENCES = {"monthly": (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), "quarterly": QUARTER_END_MONTHS}
# Shared with the dbt models, so defined once as dbt vars in dbt_project.yml (grading/dbt_vars.py says why).
#: The tier of a customer who meets no tier rule, and its rank: after every real tier.
NO_TIER = dbt_var("no_tier", str)
NO_TIER_RANK = dbt_var("no_tier_rank", int)
#: What a tier rule names to test a score's points (``score.<name>``) or the weighted composite.
SCORE_PREFIX = dbt_var("score_indicator_prefix", str)
COMPOSITE = dbt_var("composite_indicator", str)
#: Between a policy's name and its version in a policy version's key, e.g. highend_flower@1.
POLICY_VERSION_SEPARATOR = dbt_var("policy_version_separator", str)
REQUIRED_SETTINGS = ("window_months", "big_ticket_order_min")
_CONDITION = re.compile(r"^\s*(?P<indicator>[a-z_]+(\.[a-z_]+)?)\s*(?P<operator>>=|<=|>|<)\s*(?P<threshold>-?\d+(\.\d+)?)\s*$")
_FILE_NAME = re.compile(r"^v(?P<version>\d+)\.ya?ml$")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


class PolicyError(TierhouseError, ValueError):
    """A policy file is malformed; the message names the file, the key and the problem."""

    def __init__(self, path: Path, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")
        self.path, self.key, self.problem = path, key, problem


class UnknownPolicy(TierhouseError, ValueError):
    """No policy file has the name asked for."""


@dataclass(frozen=True)
class Condition:
    condition_id: str
    match_group: str
    indicator: str
    operator: str
    threshold: float


@dataclass(frozen=True)
class Band:
    """One band of a score: met when its conditions hold (a band with none always holds)."""

    band: str
    rank: int
    points: float
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Score:
    """A banded indicator: the first band (top to bottom) whose rule holds gives the points."""

    name: str
    weight: float
    bands: tuple[Band, ...]


@dataclass(frozen=True)
class Tier:
    code: str
    label: str
    rank: int
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class RegradeRule:
    """An Art. 9 move: a customer on ``from_tier`` whose recent trend meets the rule goes to ``to_tier``."""

    code: str
    from_tier: str
    to_tier: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Policy:
    name: str
    version: int
    effective_from: date
    settings: dict[str, float]
    scores: tuple[Score, ...]
    tiers: tuple[Tier, ...]
    sha256: str
    document: dict
    regrade_rules: tuple[RegradeRule, ...] = ()
    #: The tier of a consenting customer with no purchase in the window (docs/POLICIES.md).
    lapsed_tier: str = NO_TIER

    @property
    def policy_version_id(self) -> str:
        return f"{self.name}{POLICY_VERSION_SEPARATOR}{self.version}"

    @property
    def tier_ranks(self) -> dict[str, int]:
        """Every tier a list may give, with its rank; ``none`` (no tier met) ranks last."""
        return {tier.code: tier.rank for tier in self.tiers} | {NO_TIER: NO_TIER_RANK}

    @property
    def calendar(self) -> dict:
        return self.document.get("calendar") or {}

    def lists_month(self, period_month: date) -> bool:
        """Whether the policy's calendar produces a list for this month (monthly, or quarter ends)."""
        return period_month.month in CADENCES[self.calendar.get("cadence", "monthly")]


def _parse_condition(path: Path, key: str, group: str, item: object, known: frozenset[str]) -> Condition:
    if isinstance(item, str):
        condition_id, rule = None, item
    elif isinstance(item, dict) and set(item) == {"id", "rule"}:
        condition_id, rule = str(item["id"]), str(item["rule"])
    else:
        raise PolicyError(path, key, "a condition is 'indicator op number' or {id: ..., rule: 'indicator op number'}")
    match = _CONDITION.match(rule)
    if not match:
        raise PolicyError(path, key, f"cannot read condition {rule!r}; expected e.g. 'spend >= 100000'")
    indicator = match["indicator"]
    if indicator not in known:
        raise PolicyError(path, key, f"unknown indicator {indicator!r}; known: {', '.join(sorted(known))}")
    return Condition(condition_id or indicator, group, indicator, match["operator"], float(match["threshold"]))


def _parse_rule(path: Path, key: str, spec: dict, known: frozenset[str], required: bool) -> tuple[Condition, ...]:
    """The ``all``/``any`` conditions of a tier or band, with unique ids."""
    if required and not spec.get("all") and not spec.get("any"):
        raise PolicyError(path, key, "needs at least one condition under 'all' or 'any'")
    conditions: list[Condition] = []
    for group in ("all", "any"):
        items = spec.get(group) or []
        if not isinstance(items, list):
            raise PolicyError(path, f"{key}.{group}", "must be a list")
        conditions += [_parse_condition(path, f"{key}.{group}[{i}]", group, item, known) for i, item in enumerate(items)]
    ids = [c.condition_id for c in conditions]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise PolicyError(path, key, f"condition ids {duplicated} repeat; name them with {{id: ..., rule: ...}}")
    return tuple(conditions)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _implies(a: Condition, b: Condition) -> bool:
    """Whenever ``a`` holds, ``b`` holds: the same indicator, the same direction, a bound at least as tight."""
    if a.indicator != b.indicator:
        return False
    for upward in ((">", ">="), ("<", "<=")):
        if a.operator in upward and b.operator in upward:
            tighter = a.threshold > b.threshold if upward[0] == ">" else a.threshold < b.threshold
            return tighter or (a.threshold == b.threshold and (b.operator == upward[1] or a.operator == upward[0]))
    return False


def _rule_implies(a: tuple[Condition, ...], b: tuple[Condition, ...]) -> bool:
    """Whenever rule ``a`` holds, rule ``b`` holds (a sufficient test, never a false alarm: each way
    ``a`` can hold meets every 'all' condition of ``b`` and one of its 'any' conditions)."""
    a_all = [c for c in a if c.match_group == "all"]
    b_all = [c for c in b if c.match_group == "all"]
    b_any = [c for c in b if c.match_group == "any"]
    a_any = [c for c in a if c.match_group == "any"]
    for held in [[*a_all, chosen] for chosen in a_any] or [a_all]:
        if not all(any(_implies(h, c) for h in held) for c in b_all):
            return False
        if b_any and not any(_implies(h, c) for h in held for c in b_any):
            return False
    return True


def _refuse_shadowed(
    path: Path, key: str, kind: str, rule: tuple[Condition, ...], before: list[tuple[str, tuple[Condition, ...]]]
) -> None:
    """First match wins (bands top to bottom, tiers best rank first): a rule that can only hold
    where an earlier one holds too never applies, which is a mistake in the file."""
    for name, earlier in before:
        if rule and earlier and _rule_implies(rule, earlier):
            raise PolicyError(
                path,
                key,
                f"overlaps {kind} {name!r} entirely: whenever its rule holds, that earlier {kind}'s holds too, so it never applies",
            )


def _parse_scores(path: Path, doc: object) -> tuple[Score, ...]:
    if doc is None:
        return ()
    if not isinstance(doc, dict):
        raise PolicyError(path, "scores", "must be a mapping of score name to bands")
    scores = []
    for name, spec in doc.items():
        key = f"scores.{name}"
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise PolicyError(path, key, "score names are lowercase identifiers")
        if not isinstance(spec, dict) or set(spec) - {"weight", "bands", "note"}:
            raise PolicyError(path, key, "a score has 'bands' and optionally 'weight' and 'note'")
        weight = spec.get("weight", 0)
        if not _number(weight) or weight < 0:
            raise PolicyError(path, f"{key}.weight", f"must be a number >= 0, got {weight!r}")
        bands_doc = spec.get("bands")
        if not isinstance(bands_doc, list) or len(bands_doc) < 2:
            raise PolicyError(path, f"{key}.bands", "must list at least two bands, best first")
        bands = []
        for rank, band in enumerate(bands_doc, start=1):
            band_key = f"{key}.bands[{rank - 1}]"
            if not isinstance(band, dict) or "band" not in band or not _number(band.get("points")):
                raise PolicyError(path, band_key, "a band needs 'band' (its name) and numeric 'points'")
            unknown = set(band) - {"band", "points", "all", "any"}
            if unknown:
                raise PolicyError(path, band_key, f"unknown keys {sorted(unknown)}")
            is_last = rank == len(bands_doc)
            conditions = _parse_rule(path, band_key, band, INDICATORS, required=not is_last)
            if is_last and conditions:
                raise PolicyError(path, band_key, "the last band is the fallback and takes no conditions")
            bands.append(Band(str(band["band"]), rank, float(band["points"]), conditions))
        names = [b.band for b in bands]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise PolicyError(path, f"{key}.bands", f"band names {repeated} repeat")
        for later in bands:
            _refuse_shadowed(
                path,
                f"{key}.bands[{later.rank - 1}]",
                "band",
                later.conditions,
                [(b.band, b.conditions) for b in bands[: later.rank - 1]],
            )
        scores.append(Score(name, float(weight), tuple(bands)))
    return tuple(scores)


def parse_policy(path: Path, *, in_policies_dir: bool = True) -> Policy:
    """Read and validate one policy file. ``in_policies_dir=False`` (``tierhouse simulate``'s
    edited copies, which may live anywhere) skips only the check that the file is named
    ``<policy>/v<version>.yml``; every other rule applies."""
    raw_bytes = path.read_bytes()
    try:
        doc = yaml.safe_load(raw_bytes)
    except yaml.YAMLError as exc:
        raise PolicyError(path, "(file)", f"not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise PolicyError(path, "(file)", "must be a mapping")
    for key in ("policy", "version", "effective_from", "settings", "tiers"):
        if key not in doc:
            raise PolicyError(path, key, "missing")
    unknown = set(doc) - {
        "policy",
        "version",
        "title",
        "source_document",
        "effective_from",
        "calendar",
        "audit",
        "settings",
        "scores",
        "regrade",
        "lapsed_tier",
        "tiers",
    }
    if unknown:
        raise PolicyError(path, "(file)", f"unknown keys {sorted(unknown)}")
    name, version = doc["policy"], doc["version"]
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise PolicyError(path, "policy", f"{name!r} is not a lowercase identifier")
    if not isinstance(version, int) or version < 1:
        raise PolicyError(path, "version", f"{version!r} is not a positive integer")
    file_match = _FILE_NAME.match(path.name)
    if in_policies_dir and (path.parent.name != name or not file_match or int(file_match["version"]) != version):
        raise PolicyError(path, "version", f"file must be policies/{name}/v{version}.yml")
    if not isinstance(doc["effective_from"], date):
        raise PolicyError(path, "effective_from", "must be a date (YYYY-MM-DD)")

    audit = doc.get("audit") or {}
    if not isinstance(audit, dict) or set(audit) - {"max_tier_kl_divergence"}:
        raise PolicyError(path, "audit", "may only set max_tier_kl_divergence")
    if "max_tier_kl_divergence" in audit and (
        not _number(audit["max_tier_kl_divergence"]) or audit["max_tier_kl_divergence"] <= 0
    ):
        raise PolicyError(path, "audit.max_tier_kl_divergence", "must be a positive number")

    _check_calendar(path, doc.get("calendar"))
    policy_settings = doc["settings"]
    if not isinstance(policy_settings, dict):
        raise PolicyError(path, "settings", "must be a mapping")
    for key, value in policy_settings.items():
        if not _number(value) or value < 0:
            raise PolicyError(path, f"settings.{key}", f"must be a number >= 0, got {value!r}")
    for key in REQUIRED_SETTINGS:
        if not policy_settings.get(key):
            raise PolicyError(path, f"settings.{key}", f"must be a positive number, got {policy_settings.get(key)!r}")

    scores = _parse_scores(path, doc.get("scores"))
    known = INDICATORS | {SCORE_PREFIX + score.name for score in scores}
    if any(score.weight for score in scores):
        known |= {COMPOSITE}

    tiers_doc = doc["tiers"]
    if not isinstance(tiers_doc, dict) or not tiers_doc:
        raise PolicyError(path, "tiers", "must be a non-empty mapping of tier code to rule")
    tiers, ranks = [], set()
    for code, spec in tiers_doc.items():
        key = f"tiers.{code}"
        if not isinstance(spec, dict):
            raise PolicyError(path, key, "must be a mapping")
        unknown = set(spec) - {"label", "rank", "all", "any", "service"}
        if unknown:
            raise PolicyError(path, key, f"unknown keys {sorted(unknown)}")
        rank = spec.get("rank")
        if not isinstance(rank, int) or rank < 1 or rank in ranks:
            raise PolicyError(path, f"{key}.rank", f"must be a unique positive integer, got {rank!r}")
        ranks.add(rank)
        tiers.append(Tier(str(code), str(spec.get("label", code)), rank, _parse_rule(path, key, spec, known, required=True)))

    ordered = sorted(tiers, key=lambda t: t.rank)
    for index, tier in enumerate(ordered):
        _refuse_shadowed(path, f"tiers.{tier.code}", "tier", tier.conditions, [(t.code, t.conditions) for t in ordered[:index]])
    regrade_window, regrade_rules = _parse_regrade(path, doc.get("regrade"), {t.code for t in tiers})
    lapsed_tier = doc.get("lapsed_tier", NO_TIER)
    if lapsed_tier not in {t.code for t in tiers} | {NO_TIER}:
        raise PolicyError(path, "lapsed_tier", f"{lapsed_tier!r} is neither a tier of this policy nor {NO_TIER!r}")
    if regrade_window:
        policy_settings = {**policy_settings, "regrade_window_months": regrade_window}
    return Policy(
        name=name,
        version=version,
        effective_from=doc["effective_from"],
        settings={k: float(v) for k, v in policy_settings.items()},
        scores=scores,
        tiers=tuple(sorted(tiers, key=lambda t: t.rank)),
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        document=json.loads(json.dumps(doc, default=str)),
        regrade_rules=regrade_rules,
        lapsed_tier=lapsed_tier,
    )


_CALENDAR_KEYS = {"cadence", "review_working_days", "regrade", "appeal_working_days", "approval_required", "unknown_year"}


def _check_calendar(path: Path, calendar: object) -> None:
    if calendar is None:
        return
    if not isinstance(calendar, dict) or set(calendar) - _CALENDAR_KEYS:
        raise PolicyError(path, "calendar", f"a mapping with keys among {sorted(_CALENDAR_KEYS)}")
    for key in ("cadence", "regrade"):
        if key in calendar and calendar[key] not in CADENCES:
            raise PolicyError(path, f"calendar.{key}", f"one of {sorted(CADENCES)}, got {calendar[key]!r}")
    for key in ("review_working_days", "appeal_working_days"):
        if key in calendar and (not isinstance(calendar[key], int) or isinstance(calendar[key], bool) or calendar[key] < 1):
            raise PolicyError(path, f"calendar.{key}", f"must be a positive number of working days, got {calendar[key]!r}")
    if calendar.get("unknown_year", "weekdays") not in ("weekdays", "fail"):
        raise PolicyError(path, "calendar.unknown_year", "either 'weekdays' or 'fail'")


def _parse_regrade(path: Path, doc: object, tier_codes: set[str]) -> tuple[int, tuple[RegradeRule, ...]]:
    """The Art. 9 section: a window of months and the rules moving a customer between tiers."""
    if doc is None:
        return 0, ()
    if not isinstance(doc, dict) or set(doc) != {"window_months", "rules"}:
        raise PolicyError(path, "regrade", "needs exactly 'window_months' and 'rules'")
    window = doc["window_months"]
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 12:
        raise PolicyError(path, "regrade.window_months", f"must be a whole number of months from 1 to 12, got {window!r}")
    if not isinstance(doc["rules"], dict) or not doc["rules"]:
        raise PolicyError(path, "regrade.rules", "must be a non-empty mapping of rule name to rule")
    rules = []
    for code, spec in doc["rules"].items():
        key = f"regrade.rules.{code}"
        if not isinstance(code, str) or not _IDENTIFIER.match(code):
            raise PolicyError(path, key, "rule names are lowercase identifiers")
        if not isinstance(spec, dict) or set(spec) - {"from", "to", "all", "any"} or not {"from", "to"} <= set(spec):
            raise PolicyError(path, key, "a rule has 'from', 'to' and conditions under 'all'/'any'")
        for end in ("from", "to"):
            if spec[end] not in tier_codes:
                raise PolicyError(path, f"{key}.{end}", f"{spec[end]!r} is not a tier of this policy")
        if spec["from"] == spec["to"]:
            raise PolicyError(path, key, "moves a customer to the tier they are on")
        conditions = _parse_rule(path, key, spec, TREND_INDICATORS, required=True)
        rules.append(RegradeRule(code, spec["from"], spec["to"], conditions))
    sources = [rule.from_tier for rule in rules]
    if len(set(sources)) != len(sources):
        raise PolicyError(path, "regrade.rules", "two rules move customers off the same tier; which would win is unclear")
    return window, tuple(rules)


def discover(policies_dir: Path | None = None) -> list[Policy]:
    """Every policy file under ``policies_dir``; none at all is an error, never an empty list that
    would let a loop over the policies check nothing."""
    root = policies_dir or settings.POLICIES_DIR
    policies = [parse_policy(path) for path in sorted(root.glob("*/v*.y*ml"))]
    if not policies:
        raise PolicyError(root, "(dir)", "no policy files found (expected <policy>/v<version>.yml)")
    return policies


def newest(name: str, policies: list[Policy] | None = None) -> Policy:
    """The newest version of the named policy among its files."""
    versions = [p for p in (policies if policies is not None else discover()) if p.name == name]
    if not versions:
        raise UnknownPolicy(f"no policy file for {name!r}")
    return max(versions, key=lambda p: p.version)


def in_force(name: str, period_month: date, policies: list[Policy] | None = None) -> Policy | None:
    """The version that grades the period: the newest in force at its last day (docs/POLICIES.md);
    None when no version of the policy is in force yet."""
    period_end = add_months(period_month, 1) - timedelta(days=1)
    versions = [p for p in (policies if policies is not None else discover()) if p.name == name]
    if not versions:
        raise UnknownPolicy(f"no policy file for {name!r}")
    current = [p for p in versions if p.effective_from <= period_end]
    return max(current, key=lambda p: p.version) if current else None


def load_policies(url: WarehouseUrl, policies: list[Policy]) -> int:
    """Replace the stored copy of each policy version, all in one transaction.

    A version that already graded a period must not silently change: reloading it with a
    different checksum is refused.
    """
    if not policies:
        raise PolicyError(settings.POLICIES_DIR, "(dir)", "no policy files found")
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        for policy in policies:
            cur.execute(
                "select sha256 from raw.policy_versions where policy = %s and version = %s",
                (policy.name, policy.version),
            )
            found = cur.fetchone()
            if found and found[0] != policy.sha256 and not _version_unused(cur, policy):
                raise PolicyError(
                    settings.POLICIES_DIR / policy.name / f"v{policy.version}.yml",
                    "version",
                    "this version was already loaded with different content; publish the change as a new version",
                )
            store_policy(cur, policy)
    return len(policies)


#: The policy tables, children first (the order rows are deleted in)
POLICY_TABLES = (
    "policy_regrade_conditions",
    "policy_tier_conditions",
    "policy_score_bands",
    "policy_band_conditions",
    "policy_settings",
    "policy_versions",
)


def store_policy(cur, policy: Policy, schema: str = "raw", prefix: str = "") -> None:
    """Replace one policy version's rows in ``<schema>.<prefix>policy_*``: ``raw`` for grading,
    a what-if's scratch copies for ``tierhouse simulate``."""
    for table in POLICY_TABLES:
        cur.execute(f"delete from {schema}.{prefix}{table} where policy = %s and version = %s", (policy.name, policy.version))
    cur.execute(
        f"insert into {schema}.{prefix}policy_versions (policy, version, effective_from, sha256, document) values (%s, %s, %s, %s, %s)",
        (policy.name, policy.version, policy.effective_from, policy.sha256, json.dumps(policy.document)),
    )
    cur.executemany(
        f"insert into {schema}.{prefix}policy_settings (policy, version, setting, value) values (%s, %s, %s, %s)",
        [(policy.name, policy.version, k, v) for k, v in sorted(policy.settings.items())],
    )
    cur.executemany(
        f"insert into {schema}.{prefix}policy_tier_conditions (policy, version, tier, tier_rank, tier_label, condition_id,"
        " match_group, indicator, operator, threshold) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                policy.name,
                policy.version,
                t.code,
                t.rank,
                t.label,
                c.condition_id,
                c.match_group,
                c.indicator,
                c.operator,
                c.threshold,
            )  # fmt: skip
            for t in policy.tiers
            for c in t.conditions
        ],
    )
    cur.executemany(
        f"insert into {schema}.{prefix}policy_score_bands (policy, version, score, weight, band, band_rank, points)"
        " values (%s, %s, %s, %s, %s, %s, %s)",
        [(policy.name, policy.version, sc.name, sc.weight, b.band, b.rank, b.points) for sc in policy.scores for b in sc.bands],
    )
    cur.executemany(
        f"insert into {schema}.{prefix}policy_band_conditions (policy, version, score, band, condition_id, match_group, indicator,"
        " operator, threshold) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                policy.name,
                policy.version,
                sc.name,
                b.band,
                c.condition_id,
                c.match_group,
                c.indicator,
                c.operator,
                c.threshold,
            )
            for sc in policy.scores
            for b in sc.bands
            for c in b.conditions
        ],
    )
    cur.executemany(
        f"insert into {schema}.{prefix}policy_regrade_conditions (policy, version, rule, from_tier, to_tier, condition_id,"
        " match_group, indicator, operator, threshold) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (policy.name, policy.version, r.code, r.from_tier, r.to_tier, c.condition_id, c.match_group,
             c.indicator, c.operator, c.threshold)
            for r in policy.regrade_rules
            for c in r.conditions
        ],
    )  # fmt: skip


def _version_unused(cur, policy: Policy) -> bool:
    """True until this version has graded a period: a list recorded in the history or published
    (asked through migration ``0451_policy_version_graded``: the loader reads neither)."""
    cur.execute("select not raw.policy_version_graded(%s, %s)", (policy.name, policy.version))
    return bool(cur.fetchone()[0])
