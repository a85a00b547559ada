"""The grading report (``tierhouse report``): one static HTML page per period for managers.

Tier distribution and its trend, the migration matrix between consecutive lists, the review and
appeal deadlines kept or missed, data quality (loads, quarantine, the Great Expectations
checkpoints run as the report is made) and the published lists' snapshot hashes. Grades come
from ``published`` and ``history`` only, never from the dbt models, so the page shows what was
published whatever the grading rules are. Charts are plotly with its JavaScript inlined: the page
opens without a network. Everything is read as the gate's login (SELECT only).
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from tierhouse import settings
from tierhouse.errors import TierhouseError
from tierhouse.gates import CheckpointOutcome
from tierhouse.grading import quality
from tierhouse.grading.policy import NO_TIER, Policy, discover
from tierhouse.ingest.loaders import SourceReport, load_report
from tierhouse.lifecycle.appeals import AppealState, appeal_states
from tierhouse.lifecycle.review import has_review, review_deadline
from tierhouse.lifecycle.workdays import add_working_days
from tierhouse.periods import CHINA, add_months
from tierhouse.warehouse.connection import WarehouseUrl, connect, login_url
from tierhouse.warehouse.migrate import require_migrated

#: How many periods the trend shows, ending with the report's
TREND_MONTHS = 12
#: Where `make docs` writes dbt docs and the Great Expectations Data Docs; the report links both
DBT_DOCS = settings.DBT_PROJECT_DIR / "target" / "static_index.html"
DATA_DOCS = settings.PROJECT_ROOT / "site" / "data_docs" / "index.html"
#: Where `tierhouse report` writes unless told otherwise (ignored by git)
REPORTS_DIR = settings.PROJECT_ROOT / "reports"
NOT_LISTED = "(not listed)"
#: Tier colours by rank (best first), then the no-tier grey
_TIER_COLOURS = ("#1b4965", "#5fa8d3", "#62b6cb", "#bee9e8", "#cae9ff", "#8d99ae")
_NO_TIER_COLOUR = "#d3d3d3"
_STATUS_COLOURS = {
    "on time": "#2a9d8f",
    "answered": "#2a9d8f",
    "in review": "#8ecae6",
    "open": "#8ecae6",
    "late": "#f4a261",
    "answered_late": "#f4a261",
    "overdue": "#e63946",
    "passed": "#2a9d8f",
    "failed": "#e63946",
}


class ReportError(TierhouseError, ValueError):
    """Nothing to report: no published list for the period (and policy) asked for."""


@dataclass(frozen=True)
class ReviewSla:
    policy: str
    period_month: date
    published_on: date
    deadline: date
    confirmed_on: date | None
    status: str  # on time | late | in review | overdue


@dataclass
class PolicyReport:
    policy: str
    version: int
    title: str
    tiers: list[tuple[str, str, int]]  # code, label, rank
    distribution: dict[str, int]  # tier -> customers, this period
    trend: dict[date, dict[str, int]]  # period -> tier -> customers
    previous_period: date | None
    matrix: dict[tuple[str, str], int]  # (previous tier, tier) -> customers

    def _moved(self, up: bool) -> int:
        rank = {code: r for code, _, r in self.tiers}
        return sum(
            n
            for (was, now), n in self.matrix.items()
            if was in rank and now in rank and (rank[now] < rank[was] if up else rank[now] > rank[was])
        )

    @property
    def moved_up(self) -> int:
        """Customers on both lists whose tier is better than on the previous one."""
        return self._moved(up=True)

    @property
    def moved_down(self) -> int:
        return self._moved(up=False)


@dataclass
class Report:
    period_month: date
    made_at: datetime
    policies: list[PolicyReport]
    runs: list[tuple]  # policy, version, kind, customers, snapshot hash, created at
    reviews: list[ReviewSla]
    appeals: list[AppealState]
    loads: list[SourceReport]
    checks: list[CheckpointOutcome] = field(default_factory=list)


def collect(url: WarehouseUrl, period_month: date, policy: str | None = None, run_checks: bool = True) -> Report:
    """Everything the page shows, read as the gate's login."""
    gate_url = login_url(url, "gate")
    files = discover()
    with connect(gate_url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute(
            "select distinct policy from published.customer_tiers where period_month = %s and (%s::text is null or policy = %s)"
            " order by policy",
            (period_month, policy, policy),
        )
        names = [row[0] for row in cur.fetchall()]
        if not names:
            which = f"{policy} " if policy else ""
            raise ReportError(f"no published {which}list for {period_month:%Y-%m}; grade the period first")
        policies = [_policy_report(cur, _file(files, name, period_month), period_month) for name in names]
        cur.execute(
            "select policy, policy_version, list_kind, row_count, snapshot_hash, created_at from history.grading_runs"
            " where period_month = %s and policy = any(%s) order by policy, created_at",
            (period_month, names),
        )
        runs = cur.fetchall()
        reviews = _review_slas(cur, files, names, period_month)
    appeals = [a for a in appeal_states(gate_url) if a.policy in names and a.period_month <= period_month]
    checks = []
    if run_checks:
        checks.append(quality.run_checkpoint(gate_url, "ingest_raw"))
    return Report(period_month, datetime.now(CHINA), policies, runs, reviews, appeals, load_report(gate_url), checks)


def _file(files: list[Policy], name: str, period_month: date) -> Policy:
    versions = [p for p in files if p.name == name and p.effective_from <= add_months(period_month, 1)]
    return max(versions or [p for p in files if p.name == name], key=lambda p: p.version)


def _policy_report(cur, policy: Policy, period_month: date) -> PolicyReport:
    first = add_months(period_month, 1 - TREND_MONTHS)
    cur.execute(
        "select period_month, tier, count(*) from published.customer_tiers"
        " where policy = %s and period_month between %s and %s group by period_month, tier order by period_month",
        (policy.name, first, period_month),
    )
    trend: dict[date, dict[str, int]] = {}
    for month, tier, customers in cur.fetchall():
        trend.setdefault(month, {})[tier] = customers
    cur.execute(
        "select max(period_month) from published.customer_tiers where policy = %s and period_month < %s",
        (policy.name, period_month),
    )
    previous = cur.fetchone()[0]
    cur.execute(
        """
        with before as (
            select customer_key, tier from published.customer_tiers where policy = %(policy)s and period_month = %(previous)s
        ),
        now as (
            select customer_key, tier from published.customer_tiers where policy = %(policy)s and period_month = %(period)s
        )
        select coalesce(b.tier, %(none)s), coalesce(n.tier, %(none)s), count(*)
        from before as b full join now as n using (customer_key)
        group by 1, 2
        """,
        {"policy": policy.name, "previous": previous, "period": period_month, "none": NOT_LISTED},
    )
    matrix = {(a, b): n for a, b, n in cur.fetchall()} if previous else {}
    tiers = [(t.code, t.label, t.rank) for t in policy.tiers] + [(NO_TIER, NO_TIER, len(policy.tiers) + 1)]
    return PolicyReport(
        policy.name,
        policy.version,
        str(policy.document.get("title") or policy.name),
        tiers,
        trend.get(period_month, {}),
        trend,
        previous,
        matrix,
    )


def _review_slas(cur, files: list[Policy], names: list[str], period_month: date) -> list[ReviewSla]:
    """Each reviewed list's window (Art. 8): confirmed (or, where the policy requires it,
    approved) on time (by the first working day after the window closes, when the review job
    confirms it), late, still in review, or overdue."""
    cur.execute(
        """
        select i.policy, i.policy_version, i.period_month, i.created_at, min(c.created_at)
        from history.grading_runs as i
        left join history.grading_runs as c
            on c.list_kind in ('confirmed', 'approved') and c.policy = i.policy and c.period_month = i.period_month
        where i.list_kind = 'initial' and i.policy = any(%s) and i.period_month between %s and %s
        group by i.run_id
        order by i.period_month, i.policy
        """,
        (names, add_months(period_month, 1 - TREND_MONTHS), period_month),
    )
    by_version = {(p.name, p.version): p for p in files}
    today = datetime.now(CHINA).date()
    slas = []
    for name, version, month, published_at, confirmed_at in cur.fetchall():
        graded = by_version.get((name, version))
        if graded is None or not has_review(graded):
            continue
        deadline = review_deadline(graded, published_at)
        confirmed_on = confirmed_at.astimezone(CHINA).date() if confirmed_at else None
        if confirmed_on is not None:
            status = "on time" if confirmed_on <= add_working_days(deadline, 1, weekday_fallback=True) else "late"
        else:
            status = "in review" if today <= deadline else "overdue"
        slas.append(ReviewSla(name, month, published_at.astimezone(CHINA).date(), deadline, confirmed_on, status))
    return slas


def default_path(period_month: date, policy: str | None = None) -> Path:
    return REPORTS_DIR / f"tierhouse-report-{period_month:%Y-%m}{'-' + policy if policy else ''}.html"


def write_report(report: Report, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(report, out.parent), encoding="utf-8")
    return out


# --- rendering ---------------------------------------------------------------------------------


def _colour(tier: str, rank_order: list[str]) -> str:
    if tier == NO_TIER:
        return _NO_TIER_COLOUR
    index = rank_order.index(tier) if tier in rank_order else len(_TIER_COLOURS) - 1
    return _TIER_COLOURS[min(index, len(_TIER_COLOURS) - 1)]


def _figure_html(fig, div_id: str) -> str:
    fig.update_layout(
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        font={"family": "Inter, 'Segoe UI', 'PingFang SC', 'Microsoft YaHei', sans-serif", "size": 13},
        legend={"orientation": "h", "y": -0.18},
        height=360,
    )
    return fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=div_id, config={"displayModeBar": False, "responsive": True}
    )


def _tier_names(p: PolicyReport) -> dict[str, str]:
    return {code: (f"{code} · {label}" if label != code else code) for code, label, _ in p.tiers}


def _distribution_chart(p: PolicyReport) -> str:
    import plotly.graph_objects as go

    order = [code for code, _, _ in p.tiers]
    names = _tier_names(p)
    counts = [p.distribution.get(code, 0) for code in order]
    total = sum(counts) or 1
    fig = go.Figure(
        go.Bar(
            x=[names[c] for c in order],
            y=counts,
            marker_color=[_colour(c, order) for c in order],
            text=[f"{n:,}<br>{n / total:.0%}" for n in counts],
            textposition="outside",
            cliponaxis=False,
        )
    )
    fig.update_layout(title=f"Customers per tier, {p.policy}", yaxis_title="customers", showlegend=False)
    return _figure_html(fig, f"distribution-{p.policy}")


def _trend_chart(p: PolicyReport) -> str:
    import plotly.graph_objects as go

    order = [code for code, _, _ in p.tiers]
    names = _tier_names(p)
    months = sorted(p.trend)
    fig = go.Figure()
    for code in reversed(order):
        shares = [p.trend[m].get(code, 0) / (sum(p.trend[m].values()) or 1) for m in months]
        fig.add_trace(
            go.Bar(
                x=[m.strftime("%Y-%m") for m in months],
                y=shares,
                name=names[code],
                marker_color=_colour(code, order),
                hovertemplate="%{x}: %{y:.1%}<extra>" + names[code] + "</extra>",
            )
        )
    fig.update_layout(
        title=f"Tier shares per published list, {p.policy}", barmode="stack", yaxis_tickformat=".0%", xaxis_type="category"
    )
    return _figure_html(fig, f"trend-{p.policy}")


def _matrix_chart(p: PolicyReport) -> str:
    import plotly.graph_objects as go

    order = [code for code, _, _ in p.tiers]
    present = {t for pair in p.matrix for t in pair}
    axis = order + ([NOT_LISTED] if NOT_LISTED in present else [])
    z = [[p.matrix.get((before, now), 0) for now in axis] for before in axis]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=axis,
            y=axis,
            colorscale="Blues",
            text=[[f"{v:,}" if v else "" for v in row] for row in z],
            texttemplate="%{text}",
            hovertemplate="from %{y} to %{x}: %{z} customers<extra></extra>",
            showscale=False,
        )
    )
    fig.update_layout(
        title=f"Moves {p.previous_period:%Y-%m} → this list, {p.policy}",
        xaxis_title="tier on this list",
        yaxis_title=f"tier on {p.previous_period:%Y-%m}",
        yaxis_autorange="reversed",
    )
    return _figure_html(fig, f"matrix-{p.policy}")


def _status_chart(title: str, div_id: str, rows: dict[str, dict[str, int]], statuses: list[str]) -> str:
    import plotly.graph_objects as go

    groups = sorted(rows)
    fig = go.Figure()
    for status in statuses:
        fig.add_trace(
            go.Bar(
                y=groups,
                x=[rows[g].get(status, 0) for g in groups],
                name=status.replace("_", " "),
                orientation="h",
                marker_color=_STATUS_COLOURS[status],
            )
        )
    most = max((sum(counts.values()) for counts in rows.values()), default=0)
    fig.update_layout(
        title=title, barmode="stack", xaxis_title="count", xaxis_dtick=1 if most <= 10 else None, height=200 + 40 * len(groups)
    )
    return _figure_html(fig, div_id)


def _loads_chart(loads: list[SourceReport]) -> str:
    import plotly.graph_objects as go

    sources = [r.source for r in loads]
    fig = go.Figure(
        [
            go.Bar(x=sources, y=[r.rows_loaded for r in loads], name="loaded", marker_color="#2a9d8f"),
            go.Bar(x=sources, y=[r.rows_quarantined for r in loads], name="quarantined", marker_color="#e63946"),
        ]
    )
    # a log scale, side by side: a handful of quarantined rows stays visible beside thousands loaded
    fig.update_layout(
        title="Rows loaded and quarantined per source", barmode="group", yaxis_type="log", yaxis_title="rows (log scale)"
    )
    return _figure_html(fig, "loads")


def _table(header: list[str], rows: list[list[str]], classes: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _pill(status: str) -> str:
    colour = _STATUS_COLOURS.get(status, "#8d99ae")
    return f'<span class="pill" style="background:{colour}">{html.escape(status.replace("_", " "))}</span>'


def _link(target: Path, base: Path, label: str) -> str:
    if not target.exists():
        return f"{html.escape(label)} (not built yet: run <code>make docs</code>)"
    href = Path(os.path.relpath(target.resolve(), base.resolve())).as_posix()
    return f'<a href="{html.escape(href)}">{html.escape(label)}</a>'


def render(report: Report, out_dir: Path) -> str:
    from plotly.offline import get_plotlyjs

    period = f"{report.period_month:%Y-%m}"
    cards = []
    for p in report.policies:
        graded = sum(p.distribution.values())
        tiered = graded - p.distribution.get(NO_TIER, 0)
        moves = f" · {p.moved_up} up, {p.moved_down} down since {p.previous_period:%Y-%m}" if p.previous_period else ""
        cards.append((f"{p.policy} v{p.version}", f"{graded:,}", f"customers listed · {tiered:,} in a tier{moves}"))
    overdue = sum(1 for a in report.appeals if a.status == "overdue")
    late_reviews = sum(1 for r in report.reviews if r.status in ("late", "overdue"))
    cards.append(("Appeals", f"{len(report.appeals)}", f"{overdue} overdue" if overdue else "none overdue"))
    cards.append(("Review windows", f"{len(report.reviews)}", f"{late_reviews} late or overdue" if late_reviews else "all kept"))
    failed = [c for c in report.checks if not c.success]
    cards.append(("Quality checks", f"{len(report.checks) - len(failed)}/{len(report.checks)}", "passed"))
    card_html = "".join(
        f'<div class="card"><div class="k">{html.escape(k)}</div><div class="v">{v}</div><div class="s">{html.escape(s)}</div></div>'
        for k, v, s in cards
    )

    sections = []
    for p in report.policies:
        charts = [_distribution_chart(p), _trend_chart(p)]
        if p.previous_period:
            charts.append(_matrix_chart(p))
        else:
            charts.append('<div class="empty">No earlier published list of this policy: no moves to show.</div>')
        sections.append(
            f'<section><h2>{html.escape(p.title)} <span class="muted">({p.policy} v{p.version})</span></h2>'
            f'<div class="grid">{"".join(f"<div class=chart>{c}</div>" for c in charts)}</div></section>'
        )

    review_rows: dict[str, dict[str, int]] = {}
    for r in report.reviews:
        review_rows.setdefault(r.policy, {}).setdefault(r.status, 0)
        review_rows[r.policy][r.status] += 1
    appeal_rows: dict[str, dict[str, int]] = {}
    for a in report.appeals:
        appeal_rows.setdefault(a.policy, {}).setdefault(a.status, 0)
        appeal_rows[a.policy][a.status] += 1
    sla_charts = []
    if report.reviews:
        sla_charts.append(
            _status_chart("Review windows (Art. 8)", "reviews", review_rows, ["on time", "in review", "late", "overdue"])
        )
    else:
        sla_charts.append('<div class="empty">No list of these policies has a review window.</div>')
    if report.appeals:
        sla_charts.append(
            _status_chart("Appeals (Art. 9)", "appeals", appeal_rows, ["answered", "open", "answered_late", "overdue"])
        )
    else:
        sla_charts.append(f'<div class="empty">No appeal against these lists up to {period}.</div>')
    review_table = _table(
        ["policy", "list", "published", "window closes", "confirmed", "status"],
        [
            [
                r.policy,
                f"{r.period_month:%Y-%m}",
                str(r.published_on),
                str(r.deadline),
                str(r.confirmed_on or "—"),
                _pill(r.status),
            ]
            for r in report.reviews
        ],
    )
    appeal_table = _table(
        ["appeal", "policy", "list", "customer", "received", "due", "status", "outcome"],
        [
            [
                a.appeal_id[:8], a.policy, f"{a.period_month:%Y-%m}", html.escape(a.customer_key),
                f"{a.received_at.astimezone(CHINA):%Y-%m-%d}", str(a.due_on), _pill(a.status), html.escape(a.outcome or "—"),
            ]
            for a in report.appeals
        ],
    )  # fmt: skip

    check_rows = []
    for c in report.checks:
        details = "; ".join(html.escape(str(f)) for f in c.failures[:5]) or "—"
        check_rows.append([html.escape(c.checkpoint), _pill("passed" if c.success else "failed"), str(c.evaluated), details])
    load_rows = [
        [
            html.escape(r.source), f"{r.files:,}", f"{r.rows_read:,}", f"{r.rows_loaded:,}", f"{r.rows_quarantined:,}",
            "yes" if r.reconciled else "<b>NO</b>",
            html.escape(", ".join(f"{code} {n}" for code, n in sorted(r.reasons.items())) or "—"),
        ]
        for r in report.loads
    ]  # fmt: skip
    run_rows = [
        [html.escape(policy), f"v{version}", html.escape(kind), f"{customers:,}", f"<code>{html.escape(digest)}</code>",
         f"{created.astimezone(CHINA):%Y-%m-%d %H:%M}"]
        for policy, version, kind, customers, digest, created in report.runs
    ]  # fmt: skip
    docs = f"{_link(DATA_DOCS, out_dir, 'Great Expectations Data Docs')} · {_link(DBT_DOCS, out_dir, 'dbt docs (models, columns, lineage)')}"

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Customer tiers — {period}</title>
<style>
body {{ margin: 0; font-family: Inter, "Segoe UI", "PingFang SC", "Microsoft YaHei", sans-serif; color: #1d2d3a; background: #f4f6f8; }}
header {{ background: linear-gradient(120deg, #1b4965, #2c7da0); color: white; padding: 28px 40px 24px; }}
header h1 {{ margin: 0 0 6px; font-size: 28px; font-weight: 600; }}
header p {{ margin: 0; opacity: .85; }}
main {{ padding: 24px 40px 48px; max-width: 1500px; margin: auto; }}
.cards {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 16px; margin: -44px 0 24px; }}
.card {{ background: white; border-radius: 10px; padding: 16px 20px; box-shadow: 0 2px 8px rgba(0,0,0,.08); }}
.card .k {{ font-size: 13px; color: #5c6b78; }} .card .v {{ font-size: 30px; font-weight: 600; margin: 4px 0; }}
.card .s {{ font-size: 13px; color: #5c6b78; }}
section {{ background: white; border-radius: 10px; padding: 20px 24px; margin-bottom: 24px; box-shadow: 0 2px 8px rgba(0,0,0,.06); }}
h2 {{ margin: 0 0 12px; font-size: 20px; font-weight: 600; }} .muted {{ color: #8d99ae; font-weight: 400; font-size: 15px; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }}
.chart {{ min-height: 360px; }} .empty {{ color: #8d99ae; padding: 40px; text-align: center; }}
table {{ border-collapse: collapse; width: 100%; font-size: 13px; margin-top: 8px; }}
th, td {{ text-align: left; padding: 6px 10px; border-bottom: 1px solid #e5e9ee; }}
th {{ color: #5c6b78; font-weight: 600; }} code {{ font-size: 12px; }}
.pill {{ color: white; border-radius: 10px; padding: 2px 10px; font-size: 12px; white-space: nowrap; }}
footer {{ color: #8d99ae; font-size: 12px; text-align: center; padding-bottom: 24px; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<header><h1>Customer tiers — {period}</h1>
<p>Published lists, their moves, deadlines and data quality · made {report.made_at:%Y-%m-%d %H:%M} (China time)</p></header>
<main>
<div class="cards">{card_html}</div>
{"".join(sections)}
<section><h2>Deadlines: review windows and appeals</h2><div class="grid">{"".join(f"<div class=chart>{c}</div>" for c in sla_charts)}</div>
{review_table}{appeal_table if report.appeals else ""}</section>
<section><h2>Data quality</h2><div class="grid"><div class="chart">{_loads_chart(report.loads) if report.loads else '<div class="empty">Nothing loaded.</div>'}</div>
<div>{_table(["checkpoint", "result", "expectations", "failed expectations"], check_rows)}
{_table(["source", "files", "read", "loaded", "quarantined", "reconciled", "quarantine reasons"], load_rows)}
<p>{docs}</p></div></div></section>
<section><h2>Published lists of {period} and their snapshot hashes</h2>
{_table(["policy", "version", "list", "customers", "snapshot hash (SHA-256)", "recorded (China time)"], run_rows)}
<p class="muted">The same inputs and policy version give the same hash on every machine: compare with <code>tierhouse history</code> or an auditor's copy.</p></section>
</main>
<script>
// charts drawn while the page was still being laid out take their cells' final width once it is
window.addEventListener("load", () => document.querySelectorAll(".plotly-graph-div").forEach(d => Plotly.Plots.resize(d)));
</script>
<footer>tierhouse report · grades from published.customer_tiers and history, nothing from the models</footer>
</body></html>
"""
