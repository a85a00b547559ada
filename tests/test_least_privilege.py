"""Least privilege, proved as the real login roles (each connected with its own password, never a
superuser's SET ROLE): the privilege matrix of docs/PRIVACY.md cell by cell, and the attacks of
issue 13 — a dbt model planting a trigger or function, a view made to reach the gate or BI,
superuser-only settings, other local OS users, secrets in dbt's environment, placeholder keys."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from tests.support import as_login, assert_denied, query
from tierhouse import settings
from tierhouse.cli.main import main
from tierhouse.grading.transform import dbt_env, dbt_executable
from tierhouse.orchestration.local_airflow import airflow_env
from tierhouse.privacy import access, crypto
from tierhouse.warehouse import migrate
from tierhouse.warehouse.connection import LOGINS, EmbeddedWarehouse, WarehouseUrl, connect, login_passwords, login_url

MATRIX_DOC = settings.PROJECT_ROOT / "docs" / "PRIVACY.md"
EVERY_LOGIN = "every login"
#: How each function of the matrix is called
FUNCTION_CALLS = {
    "pii.read_customer": "select * from pii.read_customer(gen_random_uuid())",
    "pii.customer_names": "select * from pii.customer_names(gen_random_uuid())",
    "audit.log_personal_data_read": "select audit.log_personal_data_read('M000001', 'customer', 'dsr_verification')",
    "pii.add_member_version": "select pii.add_member_version(gen_random_uuid(), now()::timestamp, null, null)",
    "pii.erase_customer": "select * from pii.erase_customer(gen_random_uuid())",
    "raw.policy_version_graded": "select raw.policy_version_graded('highend_flower', 1)",
}


@dataclasses.dataclass(frozen=True)
class Cell:
    login: str
    group: str
    target: str
    action: str
    allowed: bool

    @property
    def label(self) -> str:
        return f"{self.login}:{self.action}:{self.target}:{'allowed' if self.allowed else 'refused'}"


def matrix_rows() -> list[tuple[str, str, str, list[str], list[str]]]:
    """(login, group, object, allowed actions, refused actions) of the privilege matrix."""
    text = MATRIX_DOC.read_text()
    table = text[text.index("### Privilege matrix") :].split("\n\n|", 1)[1]
    rows = []
    for line in ("|" + table).splitlines():
        if not line.startswith("|"):
            break
        cells = [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        if cells[0] in ("Login", "---"):
            continue
        login, group, target, allowed, refused = cells
        split = lambda actions: [a.strip() for a in actions.split(",") if a.strip()]  # noqa: E731
        rows.append((login, group, target, split(allowed), split(refused)))
    return rows


def matrix_cells() -> list[Cell]:
    cells = []
    for login, group, target, allowed, refused in matrix_rows():
        logins = [(each.user, each.group) for each in LOGINS.values()] if login == EVERY_LOGIN else [(login, group)]
        for user, role in logins:
            cells += [Cell(user, role, target, action, True) for action in allowed]
            cells += [Cell(user, role, target, action, False) for action in refused]
    return cells


CELLS = matrix_cells()


def test_the_matrix_names_every_login_with_its_group_role() -> None:
    documented = {(login, group) for login, group, *_ in matrix_rows() if login != EVERY_LOGIN}
    assert documented == {(login.user, login.group) for login in LOGINS.values()}


def _statement(cur, target: str, action: str) -> str:
    if target.startswith("schema "):
        schema = target.split()[1]
        return {
            "create": f"create table {schema}.privilege_matrix (x integer)",
            "view": f"create view {schema}.privilege_matrix as select 1 as x",
            "function": f"create function {schema}.privilege_matrix() returns integer language sql as 'select 1'",
        }[action]
    if target.startswith("setting "):
        assert action == "set"
        return f"set {target.split()[1]} = replica"
    if action == "execute":
        return FUNCTION_CALLS[target]
    match = re.fullmatch(r"([a-z_]+\.[a-z_]+)(?: \(([a-z_]+)\))?", target)
    assert match, target
    table, column = match[1], match[2]
    if column is None and action == "update":
        cur.execute(  # from the catalog by name: a login without USAGE on the schema may not cast to regclass
            "select a.attname from pg_attribute as a join pg_class as c on c.oid = a.attrelid"
            " join pg_namespace as n on n.oid = c.relnamespace where n.nspname || '.' || c.relname = %s"
            " and a.attnum > 0 and not a.attisdropped and a.attidentity = '' order by a.attnum desc limit 1",
            (table,),
        )
        column = cur.fetchone()[0]
    return {
        "select": f"select count({column or '*'}) from {table}",
        "insert": f"insert into {table} default values",
        "update": f"update {table} set {column} = null where false",
        "delete": f"delete from {table} where false",
        "trigger": f"create trigger privilege_matrix before insert on {table} for each row execute function audit.refuse_change()",
    }[action]


@pytest.fixture(scope="module")
def governed(server_url: WarehouseUrl) -> Iterator[WarehouseUrl]:
    """A migrated, granted warehouse with a dbt-built mart, made as dbt makes it (the dbt login
    acting as transformer), so the default privileges on what dbt builds are under test too."""
    from tests.conftest import _admin

    name = f"tierhouse_lp_{os.getpid()}"
    _admin(server_url, f'drop database if exists "{name}" with (force)')
    _admin(server_url, f'create database "{name}"')
    url = dataclasses.replace(server_url, dbname=name)
    try:
        migrate.migrate(url)
        access.apply(url)
        with connect(login_url(url, "dbt")) as conn, conn.cursor() as cur:
            cur.execute("set role transformer")  # as dbt's profile does
            cur.execute("create table marts.fct_customer_tiers (customer_key text, tier text)")
            cur.execute("insert into marts.fct_customer_tiers values ('C1', 'high')")
        yield url
    finally:
        _admin(server_url, f'drop database if exists "{name}" with (force)')


@pytest.mark.parametrize("cell", CELLS, ids=[cell.label for cell in CELLS])
def test_privilege_matrix_as_the_real_login(governed: WarehouseUrl, cell: Cell) -> None:
    with as_login(governed, cell.login) as conn, conn.cursor() as cur:
        statement = _statement(cur, cell.target, cell.action)
        if cell.allowed:
            # past the privilege check, an empty row may break a constraint and a function may
            # refuse its made-up arguments (no such read or request): that is fine
            with contextlib.suppress(psycopg2.IntegrityError, psycopg2.errors.RaiseException):
                cur.execute(statement)
        else:
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)


def test_no_login_is_a_superuser_and_each_holds_its_group_only(governed: WarehouseUrl) -> None:
    rows = query(
        governed,
        "select u.rolname, u.rolsuper or u.rolcreaterole or u.rolcreatedb or u.rolbypassrls,"
        " array(select g.rolname from pg_auth_members as m join pg_roles as g on g.oid = m.roleid where m.member = u.oid)"
        " from pg_roles as u where u.rolname = any(%s) order by 1",
        ([login.user for login in LOGINS.values()],),
    )
    assert rows == sorted((login.user, False, [login.group]) for login in LOGINS.values())
    owner = query(governed, "select rolsuper, rolcanlogin from pg_roles where rolname = 'tierhouse_owner'")
    assert owner == [(False, False)]
    # every migrated schema object belongs to the owner
    foreign = query(
        governed,
        "select n.nspname || '.' || c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " where n.nspname in ('raw', 'pii', 'shop', 'history', 'audit', 'published', 'tierhouse_meta')"
        " and c.relkind in ('r', 'v', 'm', 'p') and pg_get_userbyid(c.relowner) <> 'tierhouse_owner'"
        " union all select p.proname from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace"
        " where n.nspname in ('raw', 'pii', 'shop', 'history', 'audit', 'published', 'tierhouse_meta')"
        " and pg_get_userbyid(p.proowner) <> 'tierhouse_owner'",
    )
    assert foreign == []


def test_the_steward_counts_no_pii_table_directly(governed: WarehouseUrl) -> None:
    """Personal data only through the logged functions: not even ``count(*)`` of any pii table."""
    tables = [t for (t,) in query(governed, "select 'pii.' || tablename from pg_tables where schemaname = 'pii' order by 1")]
    assert tables
    assert_denied(governed, "steward", *(f"select count(*) from {table}" for table in tables))


def test_dbt_cannot_plant_code_that_the_publisher_or_the_superuser_would_run(governed: WarehouseUrl) -> None:
    assert_denied(
        governed,
        "dbt",
        # the attack: a trigger on the published table that runs when the publisher writes
        "create trigger steal before insert on published.customer_tiers for each row execute function audit.refuse_change()",
        # a function that would run as whoever selects a view calling it
        "create function marts.escalate() returns integer language sql as $$ select 1 $$",
        "create function pg_temp.escalate() returns integer language sql as $$ select 1 $$",
        # a trigger on a relation dbt owns, run by anyone who writes it
        "create trigger steal before insert on marts.fct_customer_tiers for each row execute function audit.refuse_change()",
        "create rule steal as on select to marts.fct_customer_tiers do instead select * from marts.fct_customer_tiers",
        "create view published.leak as select * from marts.fct_customer_tiers",
        role="transformer",
    )
    # a view calling a server-file function only runs with the reader's rights, who lack them
    with as_login(governed, "dbt") as conn, conn.cursor() as cur:
        cur.execute("set role transformer")
        cur.execute("create view marts.read_files as select pg_read_file('/etc/hostname') as content")
        conn.commit()
    for job in ("gate", "publish"):
        assert_denied(governed, job, "select content from marts.read_files")


def test_superuser_only_settings_are_out_of_reach_of_every_login(governed: WarehouseUrl) -> None:
    for job in LOGINS:
        assert_denied(governed, job, "set session_replication_role = replica", "alter table history.reviews disable trigger all")


def test_a_view_placed_in_published_is_never_granted_to_bi(governed: WarehouseUrl) -> None:
    # only the migrate login can put one there now (the matrix refuses every other); even then
    # the grants step does not hand it to bi_reader
    with connect(governed) as conn, conn.cursor() as cur:
        cur.execute("create view published.leak as select customer_key from marts.fct_customer_tiers")
    try:
        access.apply(governed)
        assert_denied(governed, "bi", "select * from published.leak")
    finally:
        with connect(governed) as conn, conn.cursor() as cur:
            cur.execute("drop view published.leak")


def test_what_dbt_builds_next_is_readable_by_the_jobs_that_read_it_and_not_by_bi(governed: WarehouseUrl) -> None:
    with connect(login_url(governed, "dbt")) as conn, conn.cursor() as cur:
        cur.execute("set role transformer")
        cur.execute("create table marts.built_later as select 1 as x")
    try:
        for job in ("gate", "publish"):
            with as_login(governed, job) as conn, conn.cursor() as cur:
                cur.execute("select x from marts.built_later")
        for job in ("bi", "audit", "ingest"):
            assert_denied(governed, job, "select x from marts.built_later")
    finally:
        with connect(governed) as conn, conn.cursor() as cur:
            cur.execute("drop table marts.built_later")


# -- the embedded server and the local OS users -------------------------------------------------
def _embedded_or_skip() -> EmbeddedWarehouse:
    if os.environ.get("WAREHOUSE_URL") or os.geteuid() != 0:
        pytest.skip("needs the embedded warehouse and root (to act as another local user)")
    return EmbeddedWarehouse()


def _as_nobody(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "nobody", "--", *cmd], capture_output=True, text=True, check=False, cwd="/")


def test_another_local_user_reaches_neither_the_socket_nor_the_state_folder(server_url: WarehouseUrl) -> None:
    embedded = _embedded_or_skip()
    port = str(embedded.credentials()["port"])
    psql = str(embedded.bin_dir() / "psql")
    through_socket = _as_nobody(psql, "-h", str(embedded.socket_dir), "-p", port, "-U", "tierhouse", "-w", "-c", "select 1")
    assert through_socket.returncode != 0 and "Permission denied" in through_socket.stderr
    # over TCP there is no trust either: every login needs its password
    over_tcp = _as_nobody(psql, "-h", "127.0.0.1", "-p", port, "-U", "tierhouse", "-w", "-c", "select 1")
    assert over_tcp.returncode != 0 and "password" in over_tcp.stderr
    hba = [
        line.split()
        for line in (embedded.pgdata / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert hba and all(fields[-1] == "scram-sha-256" for fields in hba)
    for secret_file in (embedded.credentials_file, embedded.state_dir / "logins.json", embedded.state_dir / "secrets.json"):
        if secret_file.exists():
            assert _as_nobody("cat", str(secret_file)).returncode != 0
            assert secret_file.stat().st_uid == os.geteuid() and secret_file.stat().st_mode & 0o077 == 0
    assert _as_nobody("ls", str(embedded.state_dir)).returncode != 0
    assert _as_nobody("sh", "-c", f"echo x > {embedded.state_dir}/secrets.json").returncode != 0
    # the server's OS user may not replace the key files either: the folder is not its own
    assert embedded.state_dir.stat().st_uid == os.geteuid() and embedded.state_dir.stat().st_mode & 0o777 == 0o711
    for server_folder in (embedded.pgdata, embedded.socket_dir):
        assert server_folder.stat().st_mode & 0o777 == 0o700


def test_a_state_folder_of_the_old_layout_is_taken_back_on_start(tmp_path: Path) -> None:
    """A .warehouse made before this change (folder of the server's user, trust on the socket,
    socket folder open to all) works after the next start, with the new layout."""
    if os.geteuid() != 0:
        pytest.skip("needs root to give the folder to the server's OS user")
    import pwd

    warehouse = EmbeddedWarehouse(state_dir=tmp_path / "wh", port=55420)
    try:
        url = warehouse.start()
        warehouse.stop()
        server_user = pwd.getpwnam("pgserver")
        os.chown(warehouse.state_dir, server_user.pw_uid, server_user.pw_gid)
        warehouse.state_dir.chmod(0o755)
        warehouse.socket_dir.chmod(0o777)
        hba = warehouse.pgdata / "pg_hba.conf"
        hba.write_text(
            hba.read_text().replace(
                "local   all             all                                     scram-sha-256",
                "local   all             all                                     trust",
            )
        )
        assert "trust" in hba.read_text()
        assert warehouse.start() == url
        with connect(url) as conn, conn.cursor() as cur:
            cur.execute("select 1")
        assert "trust" not in "".join(line for line in hba.read_text().splitlines() if not line.startswith("#"))
        assert warehouse.state_dir.stat().st_uid == 0 and warehouse.state_dir.stat().st_mode & 0o777 == 0o711
        assert warehouse.socket_dir.stat().st_mode & 0o777 == 0o700
    finally:
        warehouse.stop()


# -- secrets --------------------------------------------------------------------------------------
def test_dbt_sees_neither_the_keys_nor_another_logins_password(governed: WarehouseUrl, tmp_path: Path) -> None:
    keys = {os.environ[crypto.KEY_ENV], os.environ[crypto.PII_KEY_ENV]}
    others = {password for job, password in login_passwords().items() if job != "dbt"} | {governed.password}
    # the local Airflow's environment (the process Cosmos runs dbt in) holds neither
    env = airflow_env(governed, tmp_path / "airflow")
    assert not (set(env.values()) & (keys | others | {login_passwords()["dbt"]}))
    assert not any(key in value for value in env.values() for key in keys | others)
    assert (tmp_path / "airflow" / "connections.json").stat().st_mode & 0o077 == 0
    assert (tmp_path / "airflow" / "keys.json").stat().st_mode & 0o077 == 0
    # a dbt model reading the environment finds neither, from `tierhouse dbt` either
    printed = subprocess.run(
        [
            dbt_executable(), "--quiet", "compile", "--project-dir", str(settings.DBT_PROJECT_DIR),
            "--profiles-dir", str(settings.DBT_PROJECT_DIR), "--target-path", str(tmp_path / "target"),
            "--inline",
            "select '{{ env_var('TIERHOUSE_PII_KEY', 'absent') }}', '{{ env_var('TIERHOUSE_PSEUDONYM_KEY', 'absent') }}',"
            " '{{ env_var('WAREHOUSE_URL', 'absent') }}', '{{ env_var('TIERHOUSE_PG_USER', '') }}'",
        ],
        env=dbt_env(governed), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stdout + printed.stderr
    assert "'absent', 'absent', 'absent', 'th_dbt'" in printed.stdout
    assert not any(secret in printed.stdout + printed.stderr for secret in keys | others)


@pytest.mark.parametrize("placeholder", ["change-me", "changeme", "", "change-me-to-a-long-random-string"])
@pytest.mark.parametrize("name", settings.SECRET_SETTINGS)
def test_a_placeholder_secret_is_refused_at_start_up(
    name: str, placeholder: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(name, placeholder)
    assert main(["warehouse", "status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"tierhouse: {name} still hold") and "placeholder" in err


def test_a_placeholder_key_is_never_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(crypto.PII_KEY_ENV, "change-me")
    with pytest.raises(crypto.MissingKeyError, match="placeholder"):
        crypto.encrypt("x", "pii.crm_members.name")
    # nor from the keys file the local Airflow passes
    monkeypatch.delenv(crypto.KEY_ENV)
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({crypto.KEY_ENV: "changeme"}))
    monkeypatch.setenv(crypto.KEYS_FILE_ENV, str(keys))
    with pytest.raises(crypto.MissingKeyError, match="placeholder"):
        crypto.pseudonymise("phone", "13912345678")


def test_env_example_ships_no_secret() -> None:
    values = dict(
        line.split("=", 1)
        for line in (settings.PROJECT_ROOT / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert set(settings.SECRET_SETTINGS) <= set(values)
    assert all(values[name] == "" for name in settings.SECRET_SETTINGS)


def test_every_login_password_is_a_checked_secret(governed: WarehouseUrl) -> None:
    assert {login.password_env for login in LOGINS.values()} <= set(settings.SECRET_SETTINGS)
    # the migrate step gives no login a placeholder password
    with pytest.raises(migrate.MigrationError, match="TIERHOUSE_BI_PASSWORD: a placeholder is no password"):
        migrate.migrate(governed, passwords={**login_passwords(), "bi": "change-me"})
