"""The de-identification gate (P1 Art. 13, policy 002): no personal data outside ``pii``.

A Great Expectations suite is built at run time from the catalog, because the set of tables
grows with every model: for every table and view of every schema except ``pii`` (the restricted
schema) and ``shop`` (the stand-in for the retailer's own shop system, which holds guest phone
numbers as the real one does), one ``UnexpectedRowsExpectation`` per kind of personal data looks
through every text-like column (text, varchar, json, jsonb, arrays) for

* mainland mobile numbers (``13812345678``, ``138-0013-8000``, ``+86 138 0013 8000``), not
  inside a longer run of letters or digits (keyed hashes and receipt numbers are such runs);
* 18-digit resident ID numbers whose ISO 7064 MOD 11-2 check character is right;
* e-mail addresses;
* the names of the customers, given by the caller (read through the logged steward path).

A hit fails the run and is reported as schema.table.column, kind and row count — never the value,
which would put the personal data into the logs. Deliberate exceptions live in
``expectations/deidentification_exemptions.yml``, each with its reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tierhouse import settings
from tierhouse.quality import CheckpointOutcome, ExpectationFailure, QualityGateFailed
from tierhouse.warehouse import WarehouseUrl, connect

log = logging.getLogger(__name__)

UNSCANNED_SCHEMAS = ("pii", "shop", "pg_catalog", "information_schema", "pg_toast")
TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "ARRAY")
_NOT_ALNUM_BEFORE = "(^|[^0-9A-Za-z])"
_NOT_ALNUM_AFTER = "([^0-9A-Za-z]|$)"
PATTERNS = {
    "mobile": _NOT_ALNUM_BEFORE + r"(\+?86[ -]?)?1[3-9][0-9]([ -]?[0-9]{4}){2}" + _NOT_ALNUM_AFTER,
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
}
MIN_NAME_LENGTH = 2

CHECKSUM_DDL = r"""
create schema if not exists audit;
create or replace function audit.has_resident_id(value text) returns boolean
language plpgsql immutable as $$
declare
    found text[];
    id text;
    total integer;
    weights integer[] := array[7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
begin
    if value is null or value !~ '[0-9]{17}[0-9Xx]' then
        return false;
    end if;
    for found in select regexp_matches(value, '(?:^|[^0-9A-Za-z])([1-9][0-9]{16}[0-9Xx])(?=[^0-9A-Za-z]|$)', 'g') loop
        id := upper(found[1]);
        total := 0;
        for i in 1..17 loop
            total := total + substr(id, i, 1)::integer * weights[i];
        end loop;
        if substr('10X98765432', total % 11 + 1, 1) = substr(id, 18, 1) then
            return true;
        end if;
    end loop;
    return false;
end
$$;
"""


@dataclass(frozen=True)
class Exemption:
    column: str  # schema.table.column
    kinds: frozenset[str]
    reason: str


def load_exemptions(path: Path | None = None) -> list[Exemption]:
    path = path or settings.EXPECTATIONS_DIR / "deidentification_exemptions.yml"
    doc = yaml.safe_load(path.read_text()) if path.exists() else None
    exemptions = []
    for index, entry in enumerate((doc or {}).get("exemptions") or []):
        if not isinstance(entry, dict) or not str(entry.get("reason") or "").strip():
            raise ValueError(f"{path}: exemptions[{index}] needs a reason")
        kinds = frozenset(entry.get("kinds") or ())
        if not kinds or kinds - {"mobile", "resident_id", "email", "name"}:
            raise ValueError(f"{path}: exemptions[{index}] kinds must be among mobile, resident_id, email, name")
        exemptions.append(Exemption(str(entry["column"]), kinds, str(entry["reason"]).strip()))
    return exemptions


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def names_pattern(names: Iterable[str]) -> str | None:
    """One regular expression matching any of the names inside a text (no word boundaries:
    Chinese writes none); names too short to tell apart from ordinary words are left out."""
    usable = sorted({n.strip() for n in names if n and len(n.strip()) >= MIN_NAME_LENGTH}, key=len, reverse=True)
    return "|".join(re.escape(n) for n in usable) or None


def _conditions(value_sql: str, names: str | None) -> dict[str, str]:
    """Per kind, a SQL condition true when the text holds that kind of personal data. Cheap tests
    come first: an ID needs 17 digits in a row, a (Chinese) name a non-ASCII character."""
    conditions = {
        "mobile": f"{value_sql} ~ {_literal(PATTERNS['mobile'])}",
        "email": f"{value_sql} ~ {_literal(PATTERNS['email'])}",
        "resident_id": f"({value_sql} ~ '[0-9]{{17}}' and audit.has_resident_id({value_sql}))",
    }
    if names:
        conditions["name"] = f"(octet_length({value_sql}) <> char_length({value_sql}) and {value_sql} ~ {_literal(names)})"
    return conditions


def _text_columns(url: WarehouseUrl) -> dict[str, list[str]]:
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(CHECKSUM_DDL)
        cur.execute(
            """
            select c.table_schema || '.' || c.table_name, c.column_name
            from information_schema.columns as c
            where c.table_schema <> all(%s) and c.table_schema not like 'pg_temp%%' and c.table_schema not like 'pg_toast%%'
              and c.data_type = any(%s)
            order by 1, c.ordinal_position
            """,
            (list(UNSCANNED_SCHEMAS), list(TEXT_TYPES)),
        )
        tables: dict[str, list[str]] = {}
        for table, column in cur.fetchall():
            tables.setdefault(table, []).append(column)
    return tables


def _quoted(table: str) -> str:
    schema, name = table.split(".", 1)
    return f'"{schema}"."{name}"'


def _scan_query(table: str, columns: list[str], names: str | None, exempt: set[tuple[str, str]]) -> str | None:
    """One pass over the table: every text column joined into one string per row, tested for
    every kind of personal data (columns exempt from a kind are left out of that kind's test)."""
    tests = []
    for kind in _conditions("x", names):
        scanned = [c for c in columns if (f"{table}.{c}", kind) not in exempt]
        if scanned:
            text = "concat_ws(' ', " + ", ".join(f'"{c}"::text' for c in scanned) + ")"
            tests.append(_conditions(text, names)[kind])
    if not tests:
        return None
    return f"select {_literal(table)} as table_name from {_quoted(table)} where " + " or ".join(tests)


def _locate(
    url: WarehouseUrl, scans: dict[str, str], tables: dict[str, list[str]], names: str | None, exempt: set[tuple[str, str]]
) -> list[str]:
    """After a failed scan: which columns of which tables hold which kind, and in how many rows —
    never the values."""
    found = []
    with connect(url) as conn, conn.cursor() as cur:
        failing = []
        for table, query in scans.items():
            cur.execute(f"select exists ({query})")
            if cur.fetchone()[0]:
                failing.append(table)
        for table, column in ((t, c) for t in failing for c in tables[t]):
            for kind, condition in _conditions(f'"{column}"::text', names).items():
                if (f"{table}.{column}", kind) in exempt:
                    continue
                cur.execute(f"select count(*) from {_quoted(table)} where {condition}")
                count = cur.fetchone()[0]
                if count:
                    found.append(f"{kind} in {table}.{column}: {count} rows")
    return found


def gate(url: WarehouseUrl, names: Iterable[str], exemptions: list[Exemption] | None = None) -> CheckpointOutcome:
    """Scan every non-pii table for personal data with Great Expectations; raise on any hit."""
    import great_expectations as gx

    exemptions = load_exemptions() if exemptions is None else exemptions
    exempt = {(e.column, kind) for e in exemptions for kind in e.kinds}
    pattern = names_pattern(names)
    tables = _text_columns(url)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    source = context.data_sources.add_postgres("warehouse", connection_string=url.url())
    batch = source.add_query_asset("catalog", query="select 1 as scanned").add_batch_definition_whole_table("whole")
    scans = {table: query for table, columns in tables.items() if (query := _scan_query(table, columns, pattern, exempt))}
    # One expectation over the whole catalog: GX's cost per expectation would dominate otherwise.
    # GX fills the query in with str.format, so the regular expressions' braces are doubled;
    # {batch} only lends GX its connection (the tables are named directly).
    catalog_query = " union all ".join(f"({query})" for query in scans.values()).replace("{", "{{").replace("}", "}}")
    suite = context.suites.add(gx.ExpectationSuite(name="deidentification"))
    suite.add_expectation(
        gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query=f"select hits.table_name from ({catalog_query}) as hits"
            " cross join (select 1 from {batch} limit 1) as batch",
            description=f"no personal data outside pii ({len(scans)} tables)",
        )
    )
    validation = context.validation_definitions.add(gx.ValidationDefinition(name="deidentification", data=batch, suite=suite))
    (item,) = validation.run().results
    failures, findings = [], []
    if not item.success:
        observed = item.result.get("observed_value")
        if observed is None:  # the query itself failed; GX keys the error by metric
            errors = [info.get("exception_message") for info in (item.exception_info or {}).values() if isinstance(info, dict)]
            findings.append(f"the scan failed: {'; '.join(str(e) for e in errors if e) or 'no result'}")
        else:
            findings += _locate(url, scans, tables, pattern, exempt)
        failures.append(ExpectationFailure("deidentification", "unexpected_rows", {"column": "catalog"}, observed))
    outcome = CheckpointOutcome("deidentification", not failures, len(scans), tuple(failures))
    log.info("de-identification gate: %d tables scanned, %s", len(scans), "FAILED" if failures else "clean")
    if failures:
        lines = "\n  ".join(findings)
        raise QualityGateFailed(f"personal data outside the pii schema:\n  {lines}")
    return outcome
