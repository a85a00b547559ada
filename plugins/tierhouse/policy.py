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
from datetime import date
from pathlib import Path

import yaml

from tierhouse import raw_schema, settings
from tierhouse.warehouse import WarehouseUrl, connect

#: Indicators the dbt feature model provides (``int_customer_indicator_values``); a dbt test
#: checks the two lists agree, so a rule cannot name an indicator that is never computed.
INDICATORS = frozenset(
    {
        "spend",
        "order_count",
        "big_ticket_orders",
        "big_ticket_share",
        "custom_share",
        "max_order_value",
        "avg_order_value",
        "active_months",
        "tenure_months",
        "days_since_last_order",
    }
)
REQUIRED_SETTINGS = ("window_months", "big_ticket_order_min")
_CONDITION = re.compile(r"^\s*(?P<indicator>[a-z_]+)\s*(?P<operator>>=|<=|>|<)\s*(?P<threshold>-?\d+(\.\d+)?)\s*$")
_FILE_NAME = re.compile(r"^v(?P<version>\d+)\.ya?ml$")


class PolicyError(ValueError):
    """A policy file is malformed; the message names the file, the key and the problem."""

    def __init__(self, path: Path, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")
        self.path, self.key, self.problem = path, key, problem


@dataclass(frozen=True)
class Condition:
    condition_id: str
    match_group: str
    indicator: str
    operator: str
    threshold: float


@dataclass(frozen=True)
class Tier:
    code: str
    label: str
    rank: int
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Policy:
    name: str
    version: int
    effective_from: date
    settings: dict[str, float]
    tiers: tuple[Tier, ...]
    sha256: str
    document: dict

    @property
    def policy_version_id(self) -> str:
        return f"{self.name}@{self.version}"


def _parse_condition(path: Path, key: str, group: str, item: object) -> Condition:
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
    if indicator not in INDICATORS:
        raise PolicyError(path, key, f"unknown indicator {indicator!r}; known: {', '.join(sorted(INDICATORS))}")
    return Condition(condition_id or indicator, group, indicator, match["operator"], float(match["threshold"]))


def parse_policy(path: Path) -> Policy:
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
    name, version = doc["policy"], doc["version"]
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise PolicyError(path, "policy", f"{name!r} is not a lowercase identifier")
    if not isinstance(version, int) or version < 1:
        raise PolicyError(path, "version", f"{version!r} is not a positive integer")
    file_match = _FILE_NAME.match(path.name)
    if path.parent.name != name or not file_match or int(file_match["version"]) != version:
        raise PolicyError(path, "version", f"file must be policies/{name}/v{version}.yml")
    if not isinstance(doc["effective_from"], date):
        raise PolicyError(path, "effective_from", "must be a date (YYYY-MM-DD)")

    policy_settings = doc["settings"]
    if not isinstance(policy_settings, dict):
        raise PolicyError(path, "settings", "must be a mapping")
    for key in REQUIRED_SETTINGS:
        value = policy_settings.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise PolicyError(path, f"settings.{key}", f"must be a positive number, got {value!r}")

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
        if not spec.get("all") and not spec.get("any"):
            raise PolicyError(path, key, "needs at least one condition under 'all' or 'any'")
        conditions = []
        for group in ("all", "any"):
            items = spec.get(group) or []
            if not isinstance(items, list):
                raise PolicyError(path, f"{key}.{group}", "must be a list")
            conditions += [_parse_condition(path, f"{key}.{group}[{i}]", group, item) for i, item in enumerate(items)]
        ids = [c.condition_id for c in conditions]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise PolicyError(path, key, f"condition ids {duplicated} repeat; name them with {{id: ..., rule: ...}}")
        tiers.append(Tier(str(code), str(spec.get("label", code)), rank, tuple(conditions)))

    return Policy(
        name=name,
        version=version,
        effective_from=doc["effective_from"],
        settings={k: float(v) for k, v in policy_settings.items() if isinstance(v, (int, float))},
        tiers=tuple(sorted(tiers, key=lambda t: t.rank)),
        sha256=hashlib.sha256(raw_bytes).hexdigest(),
        document=json.loads(json.dumps(doc, default=str)),
    )


def discover(policies_dir: Path | None = None) -> list[Policy]:
    root = policies_dir or settings.POLICIES_DIR
    return [parse_policy(path) for path in sorted(root.glob("*/v*.y*ml"))]


def load_policies(url: WarehouseUrl, policies: list[Policy]) -> int:
    """Replace the stored copy of each policy version, all in one transaction.

    A version that already graded a period must not silently change: reloading it with a
    different checksum is refused.
    """
    if not policies:
        raise PolicyError(settings.POLICIES_DIR, "(dir)", "no policy files found")
    with connect(url) as conn, conn.cursor() as cur:
        raw_schema.apply(conn, raw_schema.all_ddl())
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
            for table in ("policy_tier_conditions", "policy_settings", "policy_versions"):
                cur.execute(f"delete from raw.{table} where policy = %s and version = %s", (policy.name, policy.version))
            cur.execute(
                "insert into raw.policy_versions (policy, version, effective_from, sha256, document) values (%s, %s, %s, %s, %s)",
                (policy.name, policy.version, policy.effective_from, policy.sha256, json.dumps(policy.document)),
            )
            cur.executemany(
                "insert into raw.policy_settings (policy, version, setting, value) values (%s, %s, %s, %s)",
                [(policy.name, policy.version, k, v) for k, v in sorted(policy.settings.items())],
            )
            cur.executemany(
                "insert into raw.policy_tier_conditions (policy, version, tier, tier_rank, tier_label, condition_id,"
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
    return len(policies)


def _version_unused(cur, policy: Policy) -> bool:
    """True until a period graded by this version has been published."""
    cur.execute("select to_regclass('published.customer_tiers') is not null")
    if not cur.fetchone()[0]:
        return True
    cur.execute(
        "select not exists (select 1 from published.customer_tiers where policy = %s and policy_version = %s)",
        (policy.name, policy.version),
    )
    return bool(cur.fetchone()[0])
