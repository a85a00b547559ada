"""De-identification gate: no personal data outside the restricted ``pii`` schema.

Every column of every relation (table, view, materialized view, foreign table) in the scanned
schemas is searched for four kinds of personal data:

``mobile``
    a mainland mobile number, ``1[3-9]`` and nine more digits, also written ``138-0013-8000``,
    ``138 0013 8000``, ``138.0013.8000``, ``138/0013/8000``, ``(138)0013-8000``,
    ``+8613800138000``, ``8613800138000`` or ``0086…``;
``resident_id``
    an 18-digit resident identity number (also grouped ``6-8-4``) whose ISO 7064 MOD 11-2 check
    character is right: an 18-digit number with a wrong one is some other number;
``email``
    an e-mail address;
``name``
    a customer's name, as the caller passes them (``pii`` holds names encrypted), anywhere
    inside a value: Chinese names have no word boundaries.

A number must stand on its own: a digit or ASCII letter right before or after it, as in a keyed
hash ``v1:<hex>``, a member id ``M13812345678``, a receipt ``SH01-00012345`` or a longer number,
or a decimal point with digits on its other side, as in ``0.13812345678``, make it part of
something else — except a label: two letters or more before it, or letters after it, that are
not all hex digits, as in ``tel13912345678``, ``ID11010519491231002X`` or ``13912345678x``.
Chinese characters are not letters here, so ``请打13812345678联系`` is found. Full-width
characters (``１３８…``, ``＠``, ``（）／``), which Chinese input methods produce, are read as
their ASCII forms.

The scanned schemas are every schema of the database except:

* ``pii``, the restricted schema, where personal data belongs;
* ``shop``, the stand-in for the retailer's own online-shop database. It is the shop's system,
  not the warehouse, and holds guest checkouts' phone numbers by design; the warehouse's copy,
  ``raw.shop_orders``, has them replaced by keyed hashes and is scanned;
* PostgreSQL's own: ``information_schema`` and every ``pg_*`` schema (``pg_catalog``,
  ``pg_toast``, other sessions' ``pg_temp_*``).

Neither GE nor Airflow keeps state in the warehouse (Airflow has its own database), so nothing
else is skipped; the ``audit`` schema, where the gate's SQL functions live, is scanned too.
Columns whose type cannot spell any of the four kinds are not read: booleans, dates and times,
network addresses, geometry, bit strings, uuids, binary data and integers narrower than 64 bits
(ten digits at most). ``bigint``, ``numeric`` and ``double precision`` columns are searched for
mobile and ID numbers only.

The suite is built at run time instead of living in ``expectations/suites`` because what it
checks is the catalog itself: every relation and column that exists when the gate runs, so a
model added tomorrow is scanned without anyone listing it. Per relation there is one
``UnexpectedRowsExpectation``; its query returns one row per column and kind found, holding the
column's name, the kind and a count of rows, and never a value, so no personal data reaches GE's
results, the exception or the logs. ``expectations/checkpoints/deidentification.yml`` describes
the gate; ``expectations/deidentification_exemptions.yml`` is the reviewed list of exceptions.

Customer names never become SQL text, which would put them in the server's log and in error
messages: every database session GE opens receives them by ``COPY`` into a temporary table that
ends with the session. The detectors are SQL functions in the ``audit`` schema, created by
warehouse migration ``0005_deidentification_detectors`` and widened by
``0200_free_text_detectors``, which spell out the patterns described above;
:mod:`tierhouse.privacy.free_text` runs the same patterns on staff free text at entry.

The gate reads with least privilege: it connects as its own login, ``th_gate`` (role ``gate``),
which may only select from the scanned schemas (:func:`tierhouse.privacy.access.apply` grants
it), never as another job's login switching role (:class:`GateLogins`); and a view, materialized view or row-security policy that would run a function outside ``pg_catalog``
and ``audit`` (or a catalog function that is privileged or switches roles) is refused unscanned,
failing the gate and naming it: reading it would run that function as the gate.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tierhouse import settings
from tierhouse.errors import TierhouseError
from tierhouse.gates import CheckpointError, CheckpointOutcome, ExpectationFailure, QualityGateFailed
from tierhouse.warehouse.connection import WarehouseUrl, connect, login_url
from tierhouse.warehouse.migrate import WarehouseNotMigrated

log = logging.getLogger(__name__)

CHECKPOINT = "deidentification"
KINDS = ("mobile", "resident_id", "email", "name")
KIND_LABELS = {
    "mobile": "mobile number",
    "resident_id": "resident ID number",
    "email": "e-mail address",
    "name": "customer name",
}
#: What a number's text can spell; e-mail addresses and names need letters.
NUMBER_KINDS = ("mobile", "resident_id")

#: Schemas never scanned, besides every ``pg_*`` schema, each with the reason.
UNSCANNED_SCHEMAS = {
    "pii": "the restricted schema, where personal data belongs",
    "shop": "the retailer's own online-shop system (stand-in), which holds guest phone numbers by design",
    "information_schema": "PostgreSQL's catalog",
    "pg_catalog": "PostgreSQL's catalog",
}
MIN_NAME_LENGTH = 2
NAMES_TABLE = "pg_temp.deidentification_names"


@dataclass(frozen=True)
class GateLogins:
    """The logins the de-identification checks run as: the gate scans as its own SELECT-only
    login (``th_gate``); the customer names it looks for, at publish and at free-text entry, are
    read through the steward's logged path (``th_steward``)."""

    gate: WarehouseUrl
    steward: WarehouseUrl

    @classmethod
    def beside(cls, url: WarehouseUrl) -> GateLogins:
        """The two logins on ``url``'s server and database, with the credential store's passwords
        (the CLI's and the tests' way; a DAG task passes its Airflow connections instead)."""
        return cls(login_url(url, "gate"), login_url(url, "steward"))


def exemptions_file() -> Path:
    return settings.EXPECTATIONS_DIR / "deidentification_exemptions.yml"


# -- exemptions -------------------------------------------------------------------------------
class ExemptionError(TierhouseError, ValueError):
    """The exemptions file has an entry the gate will not accept; the message says which."""


@dataclass(frozen=True)
class Exemption:
    column: str  # schema.table.column
    kinds: frozenset[str]
    reason: str


_QUALIFIED_COLUMN = re.compile(r"^[^.]+\.[^.]+\.[^.]+$")


def parse_exemptions(document: object, source: str = "exemptions") -> tuple[Exemption, ...]:
    """The validated entries; an entry without a reason is refused, never skipped."""
    if document is None:
        return ()
    if not isinstance(document, list):
        raise ExemptionError(f"{source}: expected a list of entries with column, kinds and reason")
    exemptions: list[Exemption] = []
    for number, entry in enumerate(document, start=1):
        where = f"{source}, entry {number}"
        if not isinstance(entry, dict):
            raise ExemptionError(f"{where}: expected a mapping with column, kinds and reason")
        unknown = set(entry) - {"column", "kinds", "reason"}
        if unknown:
            raise ExemptionError(f"{where}: unknown keys {sorted(unknown)}")
        column = entry.get("column")
        if not isinstance(column, str) or not _QUALIFIED_COLUMN.match(column):
            raise ExemptionError(f"{where}: column must be schema.table.column, got {column!r}")
        where = f"{source}, {column}"
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ExemptionError(f"{where}: every exemption needs a reason")
        kinds = entry.get("kinds")
        if not isinstance(kinds, list) or not kinds or not set(kinds) <= set(KINDS):
            raise ExemptionError(f"{where}: kinds must be a non-empty list drawn from {list(KINDS)}, got {kinds!r}")
        if any(e.column == column for e in exemptions):
            raise ExemptionError(f"{where}: listed twice; give it one entry")
        exemptions.append(Exemption(column, frozenset(kinds), reason.strip()))
    return tuple(exemptions)


def load_exemptions(path: Path | None = None) -> tuple[Exemption, ...]:
    path = path or exemptions_file()
    if not path.exists():
        return ()
    return parse_exemptions(yaml.safe_load(path.read_text()), path.name)


# -- names ------------------------------------------------------------------------------------
#: Full-width characters and their ASCII forms: the names looked for are folded with this table,
#: values by ``audit.fold_width`` with the same one (tests/test_migrations.py checks they agree).
_FULL_WIDTH = (
    "".join(chr(c) for c in range(0xFF10, 0xFF1A))  # ０-９
    + "".join(chr(c) for c in range(0xFF21, 0xFF3B))  # Ａ-Ｚ
    + "".join(chr(c) for c in range(0xFF41, 0xFF5B))  # ａ-ｚ
    + "＋－＠．＿％\u3000\u2010\u2011\u2012\u2013\u2014\u2212"  # and dashes people type in numbers
    + "（）／：＃"  # brackets, slashes and labels around numbers (migration 0200)
)
_ASCII = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+-@._% ------()/:#"
assert len(_FULL_WIDTH) == len(_ASCII)
_TO_ASCII = str.maketrans(_FULL_WIDTH, _ASCII)


def _regex_escape(text: str) -> str:
    """For a PostgreSQL ARE, where a backslash before a non-alphanumeric character is a literal."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", text)


def _name_alternative(name: str) -> str:
    # A Latin-script name needs word boundaries on its ASCII ends ("Li" is not in "Limited");
    # Chinese text has none, so a Chinese name counts wherever it appears.
    pattern = _regex_escape(name)
    if name[0].isascii() and name[0].isalnum():
        pattern = "(?<![0-9A-Za-z])" + pattern
    if name[-1].isascii() and name[-1].isalnum():
        pattern += "(?![0-9A-Za-z])"
    return pattern


def searchable_names(names: Iterable[str]) -> set[str]:
    """The names as they are looked for: folded to ASCII where full-width, spaces collapsed, and
    without those shorter than two characters or without a letter."""
    cleaned = set()
    for name in names:
        folded = " ".join((name or "").translate(_TO_ASCII).split())
        if len(folded) >= MIN_NAME_LENGTH and any(ch.isalpha() for ch in folded):
            cleaned.add(folded)
    return cleaned


def name_patterns(names: Iterable[str]) -> dict[bool, str]:
    """Alternations of the names to look for: one of the names written in ASCII only (key True),
    one of the others (key False). Names shorter than two characters are left out: a single
    character is in too many words to mean anyone."""
    cleaned = searchable_names(names)
    patterns = {}
    for ascii_only in (True, False):
        group = sorted(n for n in cleaned if n.isascii() == ascii_only)
        if group:
            patterns[ascii_only] = "|".join(_name_alternative(n) for n in group)
    return patterns


# -- catalog ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScannedColumn:
    name: str
    type_name: str
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class ScannedRelation:
    schema: str
    name: str
    columns: tuple[ScannedColumn, ...]

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


_NUMBER_TYPES = frozenset({"int8", "numeric", "float8"})
_UNREADABLE_TYPES = frozenset({"uuid", "bytea"})
#: pg_type.typcategory: string, user-defined (json, jsonb, xml, ...), array, composite, enum,
#: range, unknown.
_TEXT_CATEGORIES = frozenset("SUACERX")

CATALOG_QUERY = r"""
select n.nspname, c.relname, a.attname, coalesce(base.typname, t.typname), t.typcategory
from pg_class as c
join pg_namespace as n on n.oid = c.relnamespace
join pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
join pg_type as t on t.oid = a.atttypid
left join pg_type as base on base.oid = nullif(t.typbasetype, 0)
where c.relkind in ('r', 'p', 'v', 'm', 'f')
  and not c.relispartition  -- a partition is read through its parent
  and n.nspname <> all(%(unscanned)s)
  and n.nspname not like 'pg\_%%'
  and (%(schemas)s::text[] is null or n.nspname = any(%(schemas)s::text[]))
order by n.nspname, c.relname, a.attnum
"""


#: Schemas whose functions a scanned view may call: PostgreSQL's own and the detectors'.
TRUSTED_FUNCTION_SCHEMAS = ("pg_catalog", "audit")

# A view, materialized view or row-security policy runs the functions it calls as whoever
# selects from it. One that calls a function from a schema a loader or dbt can write to, or a
# catalog function that changes the session (set_config can switch roles), is privileged for
# some roles only (pg_read_file) or runs as its owner (security definer), is refused unscanned:
# that function would run as the gate. The functions are read from the stored query trees (every
# function, operator, aggregate and window function call), not from pg_depend, which records no
# dependency on PostgreSQL's own (pinned) functions.
UNTRUSTED_CALLS_QUERY = r"""
with trees as (
    select ev_class as relid, ev_action::text as tree from pg_rewrite
    union all
    select polrelid, coalesce(polqual::text, '') || coalesce(polwithcheck::text, '') from pg_policy
),
called as (
    select distinct t.relid, case when m[1] = 'opno' then o.oprcode::oid else m[2]::oid end as fn
    from trees as t
    cross join lateral regexp_matches(t.tree, ':(funcid|opfuncid|aggfnoid|winfnoid|opno) ([0-9]+)', 'g') as m
    left join pg_operator as o on m[1] = 'opno' and o.oid = m[2]::oid
)
select n.nspname, c.relname, string_agg(distinct fn_ns.nspname || '.' || p.proname, ', ')
from called
join pg_class as c on c.oid = called.relid
join pg_namespace as n on n.oid = c.relnamespace
join pg_proc as p on p.oid = called.fn
join pg_namespace as fn_ns on fn_ns.oid = p.pronamespace
where n.nspname <> all(%(unscanned)s)
  and n.nspname not like 'pg\_%%'
  and (
    fn_ns.nspname <> all(%(trusted)s)
    or p.prosecdef
    or p.proname = 'set_config'
    or (p.proacl is not null and not exists (
        select 1 from aclexplode(p.proacl) as a where a.grantee = 0 and a.privilege_type = 'EXECUTE'))
  )
group by n.nspname, c.relname
order by n.nspname, c.relname
"""


def column_kinds(type_name: str, category: str) -> tuple[str, ...]:
    """The kinds a column of this type can hold, judged by what its text form can spell."""
    if type_name in _NUMBER_TYPES:
        return NUMBER_KINDS
    if category in _TEXT_CATEGORIES and type_name not in _UNREADABLE_TYPES:
        return KINDS
    return ()


def untrusted_calls(url: WarehouseUrl, schemas: tuple[str, ...] | None = None) -> dict[str, str]:
    """Relations the gate refuses to read, ``schema.name`` to the functions that make it refuse."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(UNTRUSTED_CALLS_QUERY, {"unscanned": list(UNSCANNED_SCHEMAS), "trusted": list(TRUSTED_FUNCTION_SCHEMAS)})
        return {f"{schema}.{name}": functions for schema, name, functions in cur.fetchall() if not schemas or schema in schemas}


def discover(url: WarehouseUrl, schemas: tuple[str, ...] | None = None) -> list[ScannedRelation]:
    """The relations to scan, with their readable columns, from ``pg_catalog``. Not from
    ``information_schema``: it leaves out materialized views and whatever the gate's role may not
    read, which must fail the scan rather than drop out of it."""
    if schemas is not None:
        refused = sorted(s for s in schemas if s in UNSCANNED_SCHEMAS or s.startswith("pg_"))
        if refused:
            raise CheckpointError(
                f"schemas {refused} are never scanned (see tierhouse.privacy.deidentification.UNSCANNED_SCHEMAS)"
            )
    with connect(url) as conn, conn.cursor() as cur:
        if schemas is not None:
            # a misspelt schema would otherwise pass the gate by scanning nothing
            cur.execute("select array(select unnest(%s::text[]) except select nspname from pg_namespace)", (list(schemas),))
            missing = cur.fetchone()[0]
            if missing:
                raise CheckpointError(f"no schema {sorted(missing)} in the database")
        cur.execute(CATALOG_QUERY, {"unscanned": list(UNSCANNED_SCHEMAS), "schemas": list(schemas) if schemas else None})
        rows = cur.fetchall()
    relations: dict[tuple[str, str], list[ScannedColumn]] = {}
    for schema, relation, column, type_name, category in rows:
        columns = relations.setdefault((schema, relation), [])
        kinds = column_kinds(type_name, category)
        if kinds:
            columns.append(ScannedColumn(column, type_name, kinds))
    return [ScannedRelation(schema, name, tuple(columns)) for (schema, name), columns in relations.items()]


# -- the query --------------------------------------------------------------------------------
def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _for_gx(sql: str) -> str:
    """Escape SQL that comes from identifiers for GE, which fills in ``{batch}`` with
    ``str.format`` and runs the query through SQLAlchemy's ``text()`` (``:name`` binds)."""
    return sql.replace("{", "{{").replace("}", "}}").replace(":", "\\:")


def scan_query(relation: ScannedRelation, exemptions: dict[str, frozenset[str]], with_names: bool) -> str | None:
    """SQL over GE's ``{batch}`` that returns ``(column_name, kind, hit_rows)`` for every column
    and kind found, or None when the relation has nothing to check.

    A row is screened whole first, its values joined by a control character that no pattern
    crosses; only the values of the rare rows that pass are looked at one by one, each distinct
    value once (the marts repeat the same labels on many rows)."""
    checked: list[tuple[ScannedColumn, tuple[str, ...]]] = []
    for column in relation.columns:
        exempt = exemptions.get(f"{relation.qualified}.{column.name}", frozenset())
        kinds = tuple(k for k in column.kinds if k not in exempt and (k != "name" or with_names))
        if kinds:
            checked.append((column, kinds))
    if not checked:
        return None

    def as_text(column: ScannedColumn) -> str:
        # json keeps \uXXXX escapes as they were typed; jsonb holds the characters they stand for
        return _for_gx(_ident(column.name)) + ("::jsonb::text" if column.type_name == "json" else "::text")

    ascii_names = f"(select pattern from {NAMES_TABLE} where ascii_only)"
    other_names = f"(select pattern from {NAMES_TABLE} where not ascii_only)"
    # computed once per query (an InitPlan), so the regex cache finds it on every row
    screen = f"(select audit.screen_pattern(max(pattern)) from {NAMES_TABLE} where ascii_only)"
    detectors = {
        "mobile": "audit.has_mobile(val)",
        "resident_id": "audit.has_resident_id(val)",
        "email": "audit.has_email(val)",
        "name": f"audit.has_name(val, {ascii_names}, {other_names})",
    }
    kinds_used = [k for k in KINDS if any(k in kinds for _, kinds in checked)]
    tests = []
    for kind in kinds_used:
        columns_of_kind = ", ".join(str(i) for i, (_, kinds) in enumerate(checked, start=1) if kind in kinds)
        tests.append(f"col = any(array[{columns_of_kind}]) and {detectors[kind]}")
    values = ", ".join(as_text(column) for column, _ in checked)
    column_names = ", ".join(_for_gx(_sql_literal(column.name)) for column, _ in checked)
    positions = ", ".join(str(i) for i in range(1, len(checked) + 1))
    kind_names = ", ".join(f"'{k}'" for k in kinds_used)
    test_list = ",\n            ".join(tests)
    # GE aliases the batch subquery only when the query has no JOIN, and PostgreSQL 15 needs the
    # alias: hence unnest() in the select list rather than a lateral join.
    return f"""
select (array[{column_names}])[col] as column_name, kind, sum(n)::bigint as hit_rows
from (
    select col, n,
        unnest(array[{kind_names}]) as kind,
        unnest(array[
            {test_list}
        ]) as hit
    from (
        select col, audit.fold_width(val) as val, n
        from (
            select col, val, count(*) as n
            from (
                select unnest(array[{positions}]) as col,
                       unnest(array[{values}]) as val
                from {{batch}}
                where concat_ws(chr(1), variadic array[{values}]) ~ {screen}
            ) as cells
            where val ~ {screen}
            group by col, val
        ) as candidates
        offset 0  -- fold each value once, not again inside every detector
    ) as folded
) as checks
where hit
group by col, kind
order by col, kind
"""


# -- running ----------------------------------------------------------------------------------
def _copy_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class _SessionsWithNames:
    """SQLAlchemy ``creator`` for GE's engine: each session it opens holds the name patterns in
    a temporary table, sent by COPY so that no statement's text contains them."""

    def __init__(self, url: WarehouseUrl, patterns: dict[bool, str]) -> None:
        self.url = url
        self.rows = "".join(f"{'t' if ascii_only else 'f'}\t{_copy_escape(p)}\n" for ascii_only, p in patterns.items())
        self.opened: list = []

    def __call__(self):
        import psycopg2

        conn = psycopg2.connect(self.url.dsn(), application_name="tierhouse-deidentification")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"create temporary table {NAMES_TABLE.split('.')[1]} (ascii_only boolean not null, pattern text not null)"
                )
                cur.copy_expert(f"copy {NAMES_TABLE} (ascii_only, pattern) from stdin", io.StringIO(self.rows))
                # counting a big table's distinct candidate values in memory, not in temp files
                cur.execute("set work_mem = '64MB'")
            conn.commit()
        except Exception:
            conn.close()
            raise
        self.opened.append(conn)
        return conn

    def close_all(self) -> None:
        for conn in self.opened:
            conn.close()
        self.opened.clear()


def _first_line(message: str | None) -> str:
    """A database error's first line: the lines after it (DETAIL, CONTEXT, the SQL) may quote data."""
    lines = (message or "").strip().splitlines()
    return lines[0][:300] if lines else "unknown error"


def _raised(exception_info: dict | None) -> str | None:
    """The first error GE caught, if any; it reports one flat dict or one per metric."""
    infos = [exception_info or {}, *(v for v in (exception_info or {}).values() if isinstance(v, dict))]
    for info in infos:
        if info.get("raised_exception"):
            return _first_line(info.get("exception_message"))
    return None


def _failures(result, relations: dict[str, ScannedRelation]) -> list[ExpectationFailure]:
    failures = []
    for run in result.run_results.values():
        relation = relations[run.suite_name].qualified
        for item in run.results:
            if item.success:
                continue
            error = _raised(item.exception_info)
            if error or not item.result.get("details"):
                observed = f"error: {error or 'no result'}"
                failures.append(ExpectationFailure(CHECKPOINT, item.expectation_config.type, {"column": relation}, observed))
                continue
            for row in item.result.get("details", {}).get("unexpected_rows", []):
                failures.append(
                    ExpectationFailure(
                        CHECKPOINT,
                        item.expectation_config.type,
                        {"column": f"{relation}.{row['column_name']}", "kind": row["kind"]},
                        int(row["hit_rows"]),
                    )
                )
    return failures


def _require_detectors(url: WarehouseUrl) -> None:
    """The gate needs only its detector functions, so it also scans a database that has just them."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("select to_regprocedure('audit.has_name(text, text, text)') is not null")
        if not cur.fetchone()[0]:
            raise WarehouseNotMigrated(
                "the warehouse has no de-identification detectors (audit.has_*); run `tierhouse warehouse migrate`"
            )


def scan(
    url: WarehouseUrl,
    names: Iterable[str],
    schemas: tuple[str, ...] | None = None,
    exemptions: tuple[Exemption, ...] | None = None,
) -> CheckpointOutcome:
    """Run the de-identification checkpoint and return its outcome; :func:`gate` raises instead.

    ``schemas`` narrows the scan (default: every scanned schema); ``exemptions`` replaces the
    reviewed file (default: ``expectations/deidentification_exemptions.yml``). Each failure is
    one column and kind, ``kwargs={"column": "schema.table.column", "kind": ...}`` with the
    number of rows as ``observed``, or a relation that could not be read, ``observed`` starting
    with ``error:``.
    """
    _require_detectors(url)  # before the import, which takes seconds
    import great_expectations as gx

    started = time.perf_counter()
    exemptions = load_exemptions() if exemptions is None else exemptions
    exempt = {e.column: e.kinds for e in exemptions}
    patterns = name_patterns(names)
    if not patterns:
        log.warning("de-identification gate: no customer names given, so none are searched for")
    refused = untrusted_calls(url, schemas)
    relations = [r for r in discover(url, schemas) if r.qualified not in refused]
    refusals = [
        ExpectationFailure(
            CHECKPOINT,
            "refuse_untrusted_functions",
            {"column": relation},
            f"error: it calls {functions}, which would run as the gate; a scanned view may call only"
            f" {' and '.join(TRUSTED_FUNCTION_SCHEMAS)} functions open to everyone",
        )
        for relation, functions in refused.items()
    ]
    scanned_columns = {f"{r.qualified}.{c.name}" for r in relations for c in r.columns}
    for column in sorted(set(exempt) - scanned_columns):
        log.warning("de-identification exemption for %s matches no scanned column", column)

    sessions = _SessionsWithNames(url, patterns)
    suites: dict[str, ScannedRelation] = {}
    try:
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = {"globally": False}
        # psycopg2 named: SQLAlchemy would otherwise pick psycopg 3 when installed, whose
        # connections the creator does not make
        source = context.data_sources.add_postgres(
            "warehouse", connection_string=url.url("postgresql+psycopg2"), kwargs={"creator": sessions}
        )
        validation_definitions = []
        for relation in relations:
            query = scan_query(relation, exempt, with_names=bool(patterns))
            if query is None:
                continue
            name = f"{CHECKPOINT}:{relation.qualified}"
            suite = context.suites.add(
                gx.ExpectationSuite(
                    name=name,
                    expectations=[
                        gx.expectations.UnexpectedRowsExpectation(
                            unexpected_rows_query=query, description=f"No personal data in {relation.qualified}"
                        )
                    ],
                )
            )
            suites[name] = relation
            relation_sql = f"select * from {_ident(relation.schema)}.{_ident(relation.name)}".replace(":", "\\:")
            batch = source.add_query_asset(relation.qualified, query=relation_sql).add_batch_definition_whole_table("whole")
            validation_definitions.append(
                context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
            )
        if not validation_definitions:
            log.warning("de-identification gate: nothing to scan in %s", ", ".join(schemas or ("the database",)))
            return CheckpointOutcome(CHECKPOINT, not refusals, 0, tuple(refusals))
        # COMPLETE: the found rows (column, kind, count) are the details the message is made of
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(name=CHECKPOINT, validation_definitions=validation_definitions, result_format="COMPLETE")
        )
        result = checkpoint.run()
    finally:
        sessions.close_all()

    failures = refusals + _failures(result, suites)
    outcome = CheckpointOutcome(CHECKPOINT, bool(result.success) and not failures, len(validation_definitions), tuple(failures))
    log.info(
        "checkpoint %s: %s (%d relations, %d columns, %.1f s)",
        CHECKPOINT,
        "passed" if outcome.success else f"FAILED with {len(failures)} findings",
        len(validation_definitions),
        sum(len(r.columns) for r in suites.values()),
        time.perf_counter() - started,
    )
    return outcome


@dataclass(frozen=True)
class Leak:
    column: str  # schema.table.column
    kind: str
    rows: int

    def __str__(self) -> str:
        return f"{self.column}: {KIND_LABELS[self.kind]} in {self.rows} row{'' if self.rows == 1 else 's'}"


def leaks(outcome: CheckpointOutcome) -> list[Leak]:
    """The outcome's findings of personal data (leaving out relations that could not be read)."""
    return [Leak(f.kwargs["column"], f.kwargs["kind"], int(str(f.observed))) for f in outcome.failures if "kind" in f.kwargs]


def describe(failure: ExpectationFailure) -> str:
    if "kind" in failure.kwargs:
        return str(Leak(failure.kwargs["column"], failure.kwargs["kind"], int(str(failure.observed))))
    return f"{failure.kwargs['column']}: not scanned ({failure.observed})"


def gate(url: WarehouseUrl, names: Iterable[str], schemas: tuple[str, ...] | None = None) -> CheckpointOutcome:
    """Scan the warehouse; raise :class:`~tierhouse.gates.QualityGateFailed` on any finding.

    The message names each schema.table.column, the kind found and in how many rows; never a
    value, which would be the personal data itself."""
    outcome = scan(url, names, schemas)
    if not outcome.success:
        lines = "\n  ".join(describe(f) for f in outcome.failures) or "(the checkpoint failed without a finding)"
        raise QualityGateFailed(
            f"checkpoint {CHECKPOINT}: personal data outside the pii schema ({len(outcome.failures)} findings);"
            f" fix the data flow, or add a reviewed entry to {exemptions_file().name}:\n  {lines}"
        )
    return outcome
