"""What-if grading (``tierhouse simulate``): one period graded under an edited policy file, compared
with the list in force.

The edited file is validated like a shipped one (only its location is free), copied into scratch
policy tables, and the real dbt models grade the one period under it, built under a prefix
(``sim__``, dbt var ``simulation_prefix``) in the usual schemas; the comparison then reads the
scratch marts beside ``published.customer_tiers``. Nothing in ``raw``, ``published`` or
``history`` is written: the dbt login cannot write them, and the scratch relations are dropped
at the end. One simulation runs at a time (an advisory lock), since the scratch relations have
one name.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from tierhouse.errors import TierhouseError
from tierhouse.grading.policy import NO_TIER, POLICY_TABLES, Policy, in_force, newest, parse_policy, store_policy
from tierhouse.grading.transform import run_dbt
from tierhouse.privacy.access import DBT_ROLE, DBT_SCHEMAS
from tierhouse.warehouse.connection import WarehouseUrl, connect, login_url, session

#: Prefix of every relation a simulation builds (dbt var ``simulation_prefix``)
SIMULATION_PREFIX = "sim__"
#: Where the edited policy's scratch tables go: the dbt seeds' schema, which the dbt role may create in
POLICY_SCHEMA = "analytics"
#: What a simulation builds: the tiers and the rule checks behind "nearest the threshold"
MODELS = ("+fct_customer_tiers", "+fct_tier_rule_checks")
NOT_LISTED = "(not listed)"
_LOCK = "tierhouse.grading.simulate"


class SimulationError(TierhouseError, RuntimeError):
    """A what-if that cannot run: no file, no list in force to compare with, dbt failing."""


@dataclass(frozen=True)
class Move:
    from_tier: str
    to_tier: str
    customers: int


@dataclass(frozen=True)
class TierCount:
    tier: str
    label: str
    in_force: int
    simulated: int


@dataclass(frozen=True)
class NearThreshold:
    tier: str
    condition: str
    previous_threshold: Decimal | None  # the threshold in force, when the edit changed it
    customer_key: str
    value: Decimal
    gap: Decimal  # value - threshold: negative below it
    is_met: bool


@dataclass(frozen=True)
class Simulation:
    policy: Policy
    period_month: date
    in_force_kinds: tuple[str, ...]  # the list kinds in force (initial, confirmed, appeal, ...)
    moves: tuple[Move, ...]
    unchanged: int
    distribution: tuple[TierCount, ...]
    nearest: tuple[NearThreshold, ...]

    @property
    def movers(self) -> int:
        return sum(move.customers for move in self.moves)


def read_edited_policy(policy_file: Path) -> Policy:
    """The edited file, validated like a shipped one; its name must be a shipped policy's."""
    if not policy_file.is_file():
        raise SimulationError(f"no such policy file: {policy_file}")
    edited = parse_policy(policy_file, in_policies_dir=False)
    newest(edited.name)  # UnknownPolicy for a name no shipped policy has: nothing to compare with
    return edited


def simulate(url: WarehouseUrl, edited: Policy, period_month: date, nearest: int = 5) -> Simulation:
    """Grade ``period_month`` under ``edited`` in scratch relations and compare with the list in force."""
    current = in_force(edited.name, period_month)
    # graded as if in force for the month asked about, whatever effective_from the draft names
    scratch = dataclasses.replace(edited, effective_from=min(edited.effective_from, period_month))
    with session(login_url(url, "dbt")) as conn:
        conn.autocommit = True
        cur = conn.cursor()
        # relations dbt builds belong to its role, so dbt may replace and this session drop them
        cur.execute(f"set role {DBT_ROLE}")
        cur.execute("select pg_try_advisory_lock(hashtext(%s))", (_LOCK,))
        if not cur.fetchone()[0]:
            raise SimulationError("another simulation is running on this warehouse; try again when it ends")
        try:
            _drop_scratch(cur)
            for table in POLICY_TABLES:
                cur.execute(f"create table {POLICY_SCHEMA}.{SIMULATION_PREFIX}{table} (like raw.{table} including defaults)")
            store_policy(cur, scratch, POLICY_SCHEMA, SIMULATION_PREFIX)
            dbt_vars = {"simulation_prefix": SIMULATION_PREFIX, "simulation_period": period_month.isoformat()}
            result = run_dbt(url, "run", "--quiet", "--select", *MODELS, "--vars", json.dumps(dbt_vars), check=False)
            if result.returncode != 0:
                raise SimulationError(
                    f"dbt could not grade {edited.name} {period_month:%Y-%m} under the edited policy (errors above)"
                )
            return _compare(login_url(url, "review"), scratch, current, period_month, nearest)
        finally:
            _drop_scratch(cur)
            cur.execute("select pg_advisory_unlock(hashtext(%s))", (_LOCK,))


def _drop_scratch(cur) -> None:
    """Drop every relation a simulation made (views first: they depend on the tables)."""
    cur.execute(
        """
        select c.relkind, n.nspname, c.relname
        from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = any(%s) and c.relkind in ('r', 'v') and starts_with(c.relname, %s)
        order by c.relkind desc
        """,
        (list(DBT_SCHEMAS), SIMULATION_PREFIX),
    )
    for kind, schema, name in cur.fetchall():
        cur.execute(f'drop {"view" if kind == "v" else "table"} if exists "{schema}"."{name}" cascade')


def _compare(url: WarehouseUrl, scratch: Policy, current: Policy | None, period_month: date, nearest: int) -> Simulation:
    marts = f"marts.{SIMULATION_PREFIX}"
    params = {"policy": scratch.name, "period": period_month, "not_listed": NOT_LISTED, "nearest": nearest}
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "select array_agg(distinct list_kind order by list_kind) from published.customer_tiers"
            " where policy = %(policy)s and period_month = %(period)s",
            params,
        )
        kinds = cur.fetchone()[0]
        if not kinds:
            raise SimulationError(
                f"no published list of {scratch.name} for {period_month:%Y-%m} to compare with; grade the period first"
            )
        cur.execute(
            f"""
            with in_force as (
                select customer_key, tier, tier_rank from published.customer_tiers
                where policy = %(policy)s and period_month = %(period)s
            ),
            simulated as (
                select customer_key, tier, tier_rank from {marts}fct_customer_tiers
                where policy = %(policy)s and period_month = %(period)s
            )
            select coalesce(f.tier, %(not_listed)s), coalesce(s.tier, %(not_listed)s), count(*)
            from in_force as f
            full join simulated as s using (customer_key)
            group by 1, 2, coalesce(f.tier_rank, 0), coalesce(s.tier_rank, 0)
            order by coalesce(f.tier_rank, 0), coalesce(s.tier_rank, 0)
            """,
            params,
        )
        pairs = cur.fetchall()
        cur.execute(
            f"""
            with counted as (
                select tier, tier_rank, count(*) as in_force, 0 as simulated from published.customer_tiers
                where policy = %(policy)s and period_month = %(period)s group by tier, tier_rank
                union all
                select tier, tier_rank, 0, count(*) from {marts}fct_customer_tiers
                where policy = %(policy)s and period_month = %(period)s group by tier, tier_rank
            )
            select tier, sum(in_force)::int, sum(simulated)::int from counted
            group by tier order by min(tier_rank)
            """,
            params,
        )
        labels = {tier.code: tier.label for tier in scratch.tiers} | {NO_TIER: NO_TIER}
        distribution = tuple(TierCount(tier, labels.get(tier, tier), before, after) for tier, before, after in cur.fetchall())
        cur.execute(
            f"""
            with ranked as (
                select tier, tier_rank, condition_id, customer_key, indicator_value, threshold,
                       indicator_value - threshold as gap, is_met,
                       row_number() over (
                           partition by tier, condition_id order by abs(indicator_value - threshold), customer_key
                       ) as nearness
                from {marts}fct_tier_rule_checks
                where policy = %(policy)s and period_month = %(period)s and indicator_value is not null
            )
            select tier, condition_id, customer_key, indicator_value, gap, is_met from ranked
            where nearness <= %(nearest)s
            order by tier_rank, condition_id, nearness
            """,
            params,
        )
        checks = cur.fetchall()
    return Simulation(
        policy=scratch,
        period_month=period_month,
        in_force_kinds=tuple(kinds),
        moves=tuple(Move(a, b, n) for a, b, n in pairs if a != b),
        unchanged=sum(n for a, b, n in pairs if a == b),
        distribution=distribution,
        nearest=tuple(_near(scratch, current, *row) for row in checks),
    )


def _conditions(policy: Policy | None) -> dict[tuple[str, str], tuple[str, str, float]]:
    return {
        (t.code, c.condition_id): (c.indicator, c.operator, c.threshold)
        for t in (policy.tiers if policy else ())
        for c in t.conditions
    }


def _near(scratch: Policy, current: Policy | None, tier, condition_id, customer_key, value, gap, is_met) -> NearThreshold:
    indicator, operator, threshold = _conditions(scratch)[(tier, condition_id)]
    before = _conditions(current).get((tier, condition_id))
    changed = before is not None and before[2] != threshold
    return NearThreshold(
        tier,
        f"{indicator} {operator} {threshold:g}",
        Decimal(str(before[2])) if changed and before else None,
        customer_key,
        value,
        gap,
        is_met,
    )


def format_simulation(sim: Simulation, policy_file: Path) -> str:
    policy = sim.policy
    graded = sum(row.simulated for row in sim.distribution)
    lines = [
        f"What-if — {policy_file} ({policy.name} v{policy.version}, sha256 {policy.sha256[:12]}) for {sim.period_month:%Y-%m},"
        f" against the published list in force ({', '.join(sim.in_force_kinds)})",
        "Nothing was published or recorded; the scratch relations are dropped.",
        "",
        f"Customers moving: {sim.movers} of {sim.movers + sim.unchanged} ({sim.unchanged} unchanged)",
    ]
    if sim.moves:
        lines.append(f"  {'from':<14} {'to':<14} {'customers':>9}")
        lines += [f"  {m.from_tier:<14} {m.to_tier:<14} {m.customers:>9}" for m in sim.moves]
    lines += ["", "New distribution", f"  {'tier':<12} {'label':<10} {'in force':>8} {'simulated':>9} {'change':>7} {'share':>7}"]
    for row in sim.distribution:
        share = row.simulated / graded if graded else 0
        lines.append(
            f"  {row.tier:<12} {row.label:<10} {row.in_force:>8} {row.simulated:>9} {row.simulated - row.in_force:>+7} {share:>7.1%}"
        )
    lines += ["", "Customers nearest each threshold (simulated; gap = value - threshold)"]
    shown = None
    for near in sim.nearest:
        if (near.tier, near.condition) != shown:
            shown = (near.tier, near.condition)
            was = f" (was {float(near.previous_threshold):g})" if near.previous_threshold is not None else ""
            lines.append(f"  {near.tier}: {near.condition}{was}")
        lines.append(
            f"    {near.customer_key:<14} {near.value:>14,.2f} {near.gap:>+14,.2f}  {'met' if near.is_met else 'not met'}"
        )
    return "\n".join(lines)
