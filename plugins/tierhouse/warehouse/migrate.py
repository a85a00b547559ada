"""The warehouse's own schema, versioned: numbered SQL files applied in order by one step.

Every object the Python code owns in the warehouse (the ``raw``, ``pii``, ``shop``, ``history``,
``audit`` and ``published`` schemas, the de-identification detectors, the group roles) is
created by a file in ``migrations/``, applied once by ``tierhouse warehouse migrate`` (the first
task of every DAG, and the demo) and recorded in ``tierhouse_meta.schema_migrations``. dbt owns
the rest. Nothing else runs DDL: a path that finds the warehouse behind fails with one line
that says so (:func:`require_migrated`). ``migrations/README.md`` says why plain SQL files and
how to add one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from tierhouse.settings import PLACEHOLDER_SECRETS
from tierhouse.warehouse.connection import LOGINS, WarehouseError, WarehouseUrl, login_passwords, session

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
VERSION_TABLE = "tierhouse_meta.schema_migrations"
_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")

_CREATE_VERSION_TABLE = f"""
create schema if not exists tierhouse_meta;
create table if not exists {VERSION_TABLE} (
    version    integer     primary key,
    name       text        not null,
    checksum   text        not null,  -- sha256 of the file as it was applied
    applied_at timestamptz not null default now(),
    applied_by text        not null default session_user
);
-- every login checks it before it works (require_migrated); it holds nothing secret
grant usage on schema tierhouse_meta to public;
grant select on {VERSION_TABLE} to public;
"""


class MigrationError(WarehouseError):
    """A migration cannot be applied; the message says which and why."""


class WarehouseNotMigrated(WarehouseError):
    """The warehouse lacks migrations this code needs (or has ones it does not know)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files, oldest first, in increasing numbers without repeats (two branches that
    both add the same number then fail here, not in the warehouse). Gaps are allowed: work done in
    parallel takes its own block of numbers (0100-0199, 0200-0299, ...)."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if not match:
            raise MigrationError(f"{path.name}: a migration file is named NNNN_lowercase_name.sql")
        data = path.read_bytes()
        found.append(Migration(int(match[1]), match[2], data.decode("utf-8"), hashlib.sha256(data).hexdigest()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions) or min(versions, default=1) < 1:
        raise MigrationError(f"migrations in {directory} must have increasing numbers from 1 without repeats; found {versions}")
    return found


def _recorded(cur) -> dict[int, str]:
    """Applied version -> the checksum it was applied with; empty before the first migration."""
    cur.execute("select to_regclass(%s) is not null", (VERSION_TABLE,))
    if not cur.fetchone()[0]:
        return {}
    cur.execute(f"select version, checksum from {VERSION_TABLE}")
    return dict(cur.fetchall())


def _unknown(known: list[Migration], recorded: dict[int, str]) -> str | None:
    unknown = sorted(set(recorded) - {m.version for m in known})
    if not unknown:
        return None
    newest = known[-1].version if known else 0
    relation = f"newer than this code's {newest:04d}" if unknown[-1] > newest else "which this code does not have"
    return f"the warehouse has migration {unknown[-1]:04d}, {relation}; run the code that applied it"


def require_migrated(cur) -> None:
    """Raise :class:`WarehouseNotMigrated` unless the warehouse has exactly this code's migrations."""
    known = migrations()
    recorded = _recorded(cur)
    problem = _unknown(known, recorded)
    if problem:
        raise WarehouseNotMigrated(problem)
    missing = [m for m in known if m.version not in recorded]
    if missing:
        raise WarehouseNotMigrated(
            f"the warehouse is at migration {len(known) - len(missing)} of {len(known)}; run `tierhouse warehouse migrate`"
        )


def _lock(cur) -> None:
    # Per database, so two migrate runs on the same warehouse queue here; held to the commit.
    cur.execute("select pg_advisory_xact_lock(hashtext('tierhouse.warehouse.migrate'))")


def migrate(url: WarehouseUrl, directory: Path = MIGRATIONS_DIR, passwords: dict[str, str] | None = None) -> list[Migration]:
    """Apply the migrations the warehouse lacks, oldest first, each in its own transaction under
    one advisory lock, and return them (none when it is up to date). An applied migration whose
    file has changed since is refused, never run again. Then hand every migrated object to the
    owner role and create or update the job logins, with ``passwords`` (job -> password; by
    default the credential store's, :func:`~tierhouse.warehouse.connection.login_passwords`)."""
    import psycopg2.errors

    known = migrations(directory)
    applied = []
    with session(url) as conn:
        with conn, conn.cursor() as cur:
            _lock(cur)
            cur.execute(_CREATE_VERSION_TABLE)
            recorded = _recorded(cur)
            problem = _unknown(known, recorded)
            if problem:
                raise MigrationError(problem)
            for migration in known:
                if migration.version in recorded and recorded[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.label} was applied with checksum {recorded[migration.version][:12]}"
                        f" but its file now has {migration.checksum[:12]}; never edit an applied migration, add a new one"
                    )
        for migration in known:
            with conn, conn.cursor() as cur:
                _lock(cur)
                # another migrate run may have applied it while this one waited for the lock
                cur.execute(f"select 1 from {VERSION_TABLE} where version = %s", (migration.version,))
                if cur.fetchone():
                    continue
                try:
                    cur.execute(migration.sql)
                except psycopg2.Error as exc:
                    if not isinstance(exc, psycopg2.errors.RaiseException | psycopg2.IntegrityError):
                        raise
                    # a migration that checks the data first says what to fix, in one line
                    reason = (exc.diag.message_primary or str(exc)).strip().splitlines()[0]
                    raise MigrationError(f"migration {migration.label} stopped (nothing of it applied): {reason}") from exc
                cur.execute(
                    f"insert into {VERSION_TABLE} (version, name, checksum) values (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
            applied.append(migration)
        with conn, conn.cursor() as cur:
            _lock(cur)
            cur.execute("select to_regprocedure('tierhouse_meta.hand_to_owner()') is not null")
            if cur.fetchone()[0]:
                cur.execute("select tierhouse_meta.hand_to_owner()")
                ensure_logins(cur, passwords or login_passwords())
    return applied


def ensure_logins(cur, passwords: dict[str, str]) -> None:
    """Create or update one login role per job (:data:`LOGINS`): a member of its group role only,
    never a superuser, with its password from the credential store. The password travels as a
    SCRAM verifier made here, so the server (and its log) never sees it in clear."""
    from psycopg2.extensions import encrypt_password

    placeholders = sorted(
        LOGINS[job].password_env for job, password in passwords.items() if password.strip().lower() in PLACEHOLDER_SECRETS
    )
    if placeholders:
        raise MigrationError(f"{', '.join(placeholders)}: a placeholder is no password; set real ones (`openssl rand -hex 32`)")
    for job, login in LOGINS.items():
        cur.execute(
            """do $$ begin
                   if not exists (select 1 from pg_roles where rolname = %(user)s) then
                       begin
                           execute format('create role %%I login', %(user)s);
                       exception when duplicate_object or unique_violation then null;
                       end;
                   end if;
               end $$""",
            {"user": login.user},
        )
        verifier = encrypt_password(passwords[job], login.user, cur.connection, "scram-sha-256")
        user = login.user  # a fixed identifier from LOGINS, never input
        cur.execute(
            f"alter role {user} login nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit password %s",
            (verifier,),
        )
        # a member of its group role only: any other membership (granted by hand) is taken away
        cur.execute(
            "select g.rolname from pg_auth_members as m join pg_roles as g on g.oid = m.roleid"
            " join pg_roles as u on u.oid = m.member where u.rolname = %s and g.rolname <> %s",
            (login.user, login.group),
        )
        for (other,) in cur.fetchall():
            cur.execute(f'revoke "{other}" from {user}')
        cur.execute(f"grant {login.group} to {user}")


def migrate_and_report(url: WarehouseUrl) -> list[str]:
    """Apply the migrations the warehouse lacks; one line per migration applied, and where it is now."""
    applied = migrate(url)
    total = len(migrations())
    return [f"applied migration {m.label}" for m in applied] + [
        f"the warehouse is at migration {total} of {total}" + ("" if applied else "; nothing to apply")
    ]
