"""The warehouse's schema comes from the numbered migrations alone: applied once, in order, under
a lock, recorded; an edited applied migration is refused; the runtime paths run no DDL and stop
with one line on a warehouse that is behind; the landing tables match what SOURCES declares."""

from __future__ import annotations

import multiprocessing
import shutil
from datetime import date
from pathlib import Path

import psycopg2
import pytest

from tests.support import as_login, assert_denied, query
from tierhouse.cli.main import main
from tierhouse.grading import policy
from tierhouse.ingest import loaders
from tierhouse.ingest.sources import POS, SOURCES, SQL_TYPES
from tierhouse.lifecycle import appeals, history, review
from tierhouse.orchestration import pipeline
from tierhouse.privacy import access, deidentification, dsr
from tierhouse.warehouse import migrate
from tierhouse.warehouse.connection import WarehouseUrl, connect, login_url

MIGRATIONS = migrate.migrations()
LATEST = len(MIGRATIONS)
#: The number a new migration would take
NEXT = MIGRATIONS[-1].version + 1

#: What the migrations create, by schema (tables and views).
RELATIONS = {
    "raw": {
        "load_manifest", "shop_orders", "shop_order_lines", "extract_watermarks", "quarantine", "policy_versions",
        "policy_tier_conditions", "policy_score_bands", "policy_band_conditions", "policy_regrade_conditions",
        "policy_settings", *(source.table for source in SOURCES.values()),
    },
    "pii": {source.table for source in SOURCES.values() if source.restricted_columns},
    "shop": {"orders", "order_lines"},
    "history": {
        "grading_runs", "tier_snapshots", "restatement_candidates", "restatement_snapshots", "restatement_decisions", "reviews", "tier_changes", "appeals", "appeal_answers", "approvals",
        "appeal_status",
    },
    "audit": {
        "access_log", "dsr_requests", "erasure_ledger", "dsr_request_values", "dsr_completions", "access_reasons",
        "access_log_reads",
    },
    "published": {"customer_tiers", "current_customer_tiers", "tier_distribution"},
    "tierhouse_meta": {"schema_migrations"},
}  # fmt: skip
FUNCTIONS = {
    "history.refuse_change", "audit.refuse_change", "audit.log_personal_data_read", "pii.read_customer", "pii.customer_names",
    "audit.fold_width", "audit.screen_pattern", "audit.has_mobile", "audit.has_email", "audit.resident_id_checksum_holds",
    "audit.has_resident_id", "audit.has_name", "audit.use_logged_read", "audit.pending_request", "pii.add_member_version",
    "pii.erase_customer", "raw.policy_version_graded",
}  # fmt: skip
APPEND_ONLY = {f"history.{t}" for t in RELATIONS["history"] - {"appeal_status"}} | {
    "audit.access_log",
    "audit.dsr_requests",
    "audit.erasure_ledger",
    "audit.dsr_completions",
    "audit.access_log_reads",
}


def _relations(url: WarehouseUrl) -> dict[str, set[str]]:
    rows = query(
        url,
        "select n.nspname, c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        " where c.relkind in ('r', 'v') and n.nspname = any(%s)",
        (list(RELATIONS),),
    )
    found: dict[str, set[str]] = {}
    for schema, name in rows:
        found.setdefault(schema, set()).add(name)
    return found


def _recorded(url: WarehouseUrl) -> list[tuple]:
    return query(url, "select version, name, checksum, applied_at from tierhouse_meta.schema_migrations order by version")


def test_migrating_an_empty_database_creates_everything_once(empty_db: WarehouseUrl, monkeypatch, capsys) -> None:
    monkeypatch.setenv("WAREHOUSE_URL", empty_db.url())
    assert main(["warehouse", "migrate"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        *(f"applied migration {m.label}" for m in MIGRATIONS),
        f"the warehouse is at migration {LATEST} of {LATEST}",
        "grants applied to every job's role",
    ]
    assert _relations(empty_db) == RELATIONS
    functions = query(
        empty_db,
        "select n.nspname || '.' || p.proname from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace"
        " where n.nspname in ('raw', 'pii', 'shop', 'history', 'audit', 'published')",
    )
    assert {name for (name,) in functions} == FUNCTIONS
    triggers = query(
        empty_db,
        "select tgrelid::regclass::text, array_agg(tgname::text order by tgname) from pg_trigger where not tgisinternal group by 1",
    )
    assert {table for table, _ in triggers} == APPEND_ONLY
    for table, names in triggers:
        short = table.split(".")[1]
        assert names == [f"{short}_append_only", f"{short}_no_truncate"], table
    roles = query(empty_db, "select rolname from pg_roles where rolname = any(%s)", (list(access.ROLES),))
    assert {role for (role,) in roles} == set(access.ROLES)
    assert [(v, n, c) for v, n, c, _ in _recorded(empty_db)] == [(m.version, m.name, m.checksum) for m in MIGRATIONS]


def test_a_second_migrate_applies_nothing(scratch_db: WarehouseUrl, monkeypatch, capsys) -> None:
    recorded = _recorded(scratch_db)
    assert migrate.migrate(scratch_db) == []
    assert _recorded(scratch_db) == recorded
    monkeypatch.setenv("WAREHOUSE_URL", scratch_db.url())
    assert main(["warehouse", "migrate"]) == 0
    assert capsys.readouterr().out == (
        f"the warehouse is at migration {LATEST} of {LATEST}; nothing to apply\ngrants applied to every job's role\n"
    )


def test_the_dags_migrate_task_leaves_every_login_usable(empty_db: WarehouseUrl, monkeypatch) -> None:
    """Every DAG's first task migrates and grants, so the next task's login has its rights even
    on a warehouse no `tierhouse warehouse migrate` has touched."""
    # the Airflow connections stand in for the job logins beside the test's database
    monkeypatch.setattr(pipeline, "warehouse_url", lambda job: login_url(empty_db, job))
    assert pipeline.migrate_warehouse() == [m.label for m in MIGRATIONS]
    for job, relation in (("bi", "published.customer_tiers"), ("gate", "raw.crm_members"), ("publish", "history.grading_runs")):
        with as_login(empty_db, job) as conn, conn.cursor() as cur:
            cur.execute(f"select count(*) from {relation}")
    assert_denied(empty_db, "bi", "select count(*) from raw.crm_members")


def _copy_migrations(tmp_path: Path, count: int = LATEST) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    for path in sorted(migrate.MIGRATIONS_DIR.glob("*.sql"))[:count]:
        shutil.copy(path, directory)
    return directory


def test_an_edited_applied_migration_is_refused_and_a_new_one_is_applied(empty_db: WarehouseUrl, tmp_path: Path) -> None:
    directory = _copy_migrations(tmp_path)
    migrate.migrate(empty_db, directory)
    recorded = _recorded(empty_db)
    edited = directory / "0002_shop_stand_in.sql"
    edited.write_text(edited.read_text().replace("phone       text,", "phone       varchar(20),"))
    with pytest.raises(migrate.MigrationError) as refused:
        migrate.migrate(empty_db, directory)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("migration 0002_shop_stand_in was applied with checksum ")
    assert message.endswith("never edit an applied migration, add a new one")
    assert _recorded(empty_db) == recorded
    assert query(empty_db, "select data_type from information_schema.columns where table_name = 'orders' and column_name = 'phone'") == [("text",)]  # fmt: skip

    shutil.copy(migrate.MIGRATIONS_DIR / edited.name, edited)  # reverted
    (directory / f"{NEXT:04d}_order_notes.sql").write_text("alter table shop.orders add column note text;\n")
    assert [m.label for m in migrate.migrate(empty_db, directory)] == [f"{NEXT:04d}_order_notes"]
    # the code without that migration does not run against the warehouse that has it
    with pytest.raises(migrate.WarehouseNotMigrated, match=f"has migration {NEXT:04d}, newer than this code's"):
        history.format_lists(empty_db)
    with pytest.raises(migrate.MigrationError, match="newer than this code's"):
        migrate.migrate(empty_db)


def test_migration_files_are_numbered_without_repeats_and_may_leave_gaps(tmp_path: Path) -> None:
    directory = _copy_migrations(tmp_path)
    # parallel work takes its own block of numbers (0100-0199, 0200-0299, ...): a gap is fine
    (directory / "0002_shop_stand_in.sql").rename(directory / "0007_shop_stand_in.sql")
    assert [m.version for m in migrate.migrations(directory)][:3] == [1, 3, 4]
    (directory / "0003_shop_again.sql").write_text("select 1;\n")
    with pytest.raises(migrate.MigrationError, match="without repeats"):
        migrate.migrations(directory)


def _migrate_after(barrier, url: WarehouseUrl, results) -> None:
    barrier.wait()
    results.put([m.version for m in migrate.migrate(url)])


def test_two_concurrent_migrate_runs_apply_each_migration_once(empty_db: WarehouseUrl) -> None:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    runs = [context.Process(target=_migrate_after, args=(barrier, empty_db, results)) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=120)
    assert [run.exitcode for run in runs] == [0, 0]
    first, second = results.get(timeout=5), results.get(timeout=5)
    assert sorted(first + second) == [m.version for m in MIGRATIONS]
    assert [v for v, *_ in _recorded(empty_db)] == [m.version for m in MIGRATIONS]
    assert _relations(empty_db) == RELATIONS


def test_a_path_on_a_warehouse_behind_the_code_stops_with_one_clear_line(
    empty_db: WarehouseUrl, tmp_path: Path, monkeypatch, capsys
) -> None:
    expected = f"the warehouse is at migration 0 of {LATEST}; run `tierhouse warehouse migrate`"
    for read in (
        lambda: history.format_lists(empty_db),
        lambda: review.confirm_due_lists(empty_db, date(2026, 11, 1)),
        lambda: appeals.appeal_states(empty_db),
        lambda: policy.load_policies(empty_db, policy.discover()),
        lambda: loaders.load_exports(empty_db, POS, tmp_path),
        lambda: dsr.customer_names(empty_db),
    ):
        with pytest.raises(migrate.WarehouseNotMigrated) as raised:
            read()
        assert str(raised.value) == expected
    with pytest.raises(migrate.WarehouseNotMigrated, match="no de-identification detectors"):
        deidentification.scan(empty_db, [])

    migrate.migrate(empty_db, _copy_migrations(tmp_path, 2))
    monkeypatch.setenv("WAREHOUSE_URL", empty_db.url())
    assert main(["history", "M000001"]) == 2
    assert capsys.readouterr().err == (
        f"tierhouse: the warehouse is at migration 2 of {LATEST}; run `tierhouse warehouse migrate`\n"
    )


def test_the_runtime_paths_run_no_ddl(scratch_db: WarehouseUrl, tmp_path: Path) -> None:
    [(superuser,)] = query(scratch_db, "select rolsuper from pg_roles where rolname = current_user")
    if not superuser:
        pytest.skip("event triggers need a superuser")
    query(
        scratch_db,
        """
        create function public.refuse_ddl() returns event_trigger language plpgsql as $$
        begin raise exception 'DDL on a runtime path: %%', tg_tag; end $$;
        create event trigger refuse_ddl on ddl_command_start execute function public.refuse_ddl();
        """,
    )
    export = tmp_path / "SH01" / "SH01_20261001.csv"
    export.parent.mkdir()
    export.write_text(
        "小票号,行号,销售时间,门店编码,会员卡号,手机号,商品编码,业务类型,定制等级,数量,单价,金额\n"
        "SH01-1,1,2026-10-01 10:00:00,SH01,M000001,,WED-S100,wedding,standard,1,880.00,880.00\n",
        encoding="utf-8",
    )
    assert loaders.load_exports(scratch_db, POS, tmp_path).rows_loaded == 1
    policy.load_policies(scratch_db, policy.discover())
    assert history.customer_history(scratch_db, "M000001") == []
    assert "Recorded lists" in history.format_lists(scratch_db)
    assert review.confirm_due_lists(scratch_db, date(2026, 11, 1)) == []
    assert appeals.appeal_states(scratch_db) == []
    with pytest.raises(psycopg2.errors.RaiseException, match="DDL on a runtime path"):
        query(scratch_db, "create table raw.not_allowed (x integer)")  # the trigger does catch DDL


#: Name, type, not null and default of each column of a relation, in order.
COLUMNS_SQL = (
    "select a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)"
    " from pg_attribute as a left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum"
    " where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum"
)


def _declared(url: WarehouseUrl, columns: list[str]) -> list[tuple]:
    """The columns PostgreSQL makes of a declaration, in a temporary table that ends with the transaction."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(f"create temporary table declared ({', '.join(columns)}) on commit drop")
        cur.execute(COLUMNS_SQL, ("pg_temp.declared",))
        return cur.fetchall()


@pytest.mark.parametrize("source", list(SOURCES.values()), ids=list(SOURCES))
def test_the_migrated_landing_tables_are_what_sources_declares(scratch_db: WarehouseUrl, source) -> None:
    raw = [f"{c.raw_name} {SQL_TYPES[c.kind]}{' not null' if c.required else ''}" for c in source.columns if c.raw_name]
    raw += ["_source_file text not null", "_source_line integer not null", "_loaded_at timestamptz not null default now()"]
    assert query(scratch_db, COLUMNS_SQL, (f"raw.{source.table}",)) == _declared(scratch_db, raw)
    if source.restricted_columns:
        by_name = {c.name: c for c in source.columns}
        # the row's key, then its personal data
        restricted = [f"{name} {SQL_TYPES[by_name[name].kind]}" for name in source.restricted_columns[:-2]]
        restricted += ["_source_file text not null", "_source_line integer not null"]
        assert query(scratch_db, COLUMNS_SQL, (f"pii.{source.table}",)) == _declared(scratch_db, restricted)


def test_sql_folds_full_width_characters_as_the_gate_folds_names(scratch_db: WarehouseUrl) -> None:
    full_width, ascii_forms = deidentification._FULL_WIDTH, deidentification._ASCII
    assert query(scratch_db, "select audit.fold_width(%s)", (full_width,)) == [(ascii_forms,)]


def test_unique_source_keys_refuse_a_warehouse_holding_duplicates_with_the_query_that_finds_them(
    empty_db: WarehouseUrl, tmp_path: Path
) -> None:
    before = [m.version for m in MIGRATIONS].index(450)
    migrate.migrate(empty_db, _copy_migrations(tmp_path, before))  # a warehouse from before the unique keys
    insert = (
        "insert into raw.imported_order_lines (order_id, line_no, ordered_at, channel, quantity, amount, _source_file,"
        " _source_line) values ('A-1', 1, '2026-09-03', 'store', 1, 10, %s, 2)"
    )
    for file_name in ("a.csv", "b.csv"):  # what two unlocked concurrent imports once committed
        query(empty_db, insert, (file_name,))
    with pytest.raises(migrate.MigrationError) as refused:
        migrate.migrate(empty_db)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("migration 0450_unique_source_keys stopped (nothing of it applied): raw.imported_order_lines")
    assert "holds 1 keys (order_id, line_no) more than once" in message
    finder = message.split("list them with: ")[1].split("; delete")[0]
    assert query(empty_db, finder) == [("A-1", 1, 2, ["a.csv", "b.csv"])]
    assert max(v for v, *_ in _recorded(empty_db)) < 450

    query(empty_db, "delete from raw.imported_order_lines where _source_file = 'b.csv'")
    assert [m.version for m in migrate.migrate(empty_db)] == [m.version for m in MIGRATIONS[before:]]
    with pytest.raises(psycopg2.errors.UniqueViolation):
        query(empty_db, insert, ("c.csv",))
    keys = query(
        empty_db,
        "select c.relname, pg_get_indexdef(i.indexrelid) from pg_index as i join pg_class as c on c.oid = i.indrelid"
        " where i.indisunique and not i.indisprimary and c.relnamespace in ('raw'::regnamespace, 'pii'::regnamespace)",
    )
    assert len(keys) == len(SOURCES) + len(RELATIONS["pii"])
    for source in SOURCES.values():
        assert any(table == source.table and f"({', '.join(source.unique_key)})" in definition for table, definition in keys), (
            source.name
        )
