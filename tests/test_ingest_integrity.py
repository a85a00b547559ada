"""Nothing lost, nothing doubled: ingest under concurrency, kills, a full disk and bad settings.

Every case runs real processes against the real PostgreSQL: concurrent `tierhouse import-orders`
runs, a landing copy killed half-way, a landing folder on a full file system, a connection
terminated by the server mid-load. Each expected failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support import query
from tierhouse.cli import main as cli_main
from tierhouse.ingest import loaders, parsing
from tierhouse.ingest.sources import ORDER_IMPORT
from tierhouse.privacy import access, crypto
from tierhouse.warehouse.connection import WarehouseUrl

TIERHOUSE = str(Path(sys.executable).with_name("tierhouse"))
HEADER = ",".join(c.name for c in ORDER_IMPORT.columns)


def write_orders(path: Path, keys: range, phone: str = "") -> Path:
    """An order-history file in the generic layout, one line per key, 100.00 each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        handle.write(HEADER + "\r\n")
        for key in keys:
            handle.write(
                f"K-{key:07d},1,2026-09-03 14:20:00,store,SH01,VIP{key % 500:04d},{phone},WED-S014,wedding,standard,1,100.00\r\n"
            )
    return path


def cli_env(url: WarehouseUrl, data_dir: Path, **overrides: str | None) -> dict[str, str]:
    """The CLI's environment: this test's database and landing area, nothing from the caller's; the
    database granted as `tierhouse warehouse migrate` leaves it, so the ingest login may load."""
    access.apply(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERHOUSE_") and k != "WAREHOUSE_URL"}
    env.update(
        WAREHOUSE_URL=url.url(),
        TIERHOUSE_DATA_DIR=str(data_dir),
        TIERHOUSE_PSEUDONYM_KEY=os.environ[crypto.KEY_ENV],
        TIERHOUSE_PII_KEY=os.environ[crypto.PII_KEY_ENV],
    )
    for name, value in overrides.items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    return env


def import_orders(path: Path, env: dict[str, str], prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [*(prefix or []), TIERHOUSE, "import-orders", str(path)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def start_import(path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`tierhouse import-orders` in the background, its output captured."""
    return subprocess.Popen(
        [TIERHOUSE, "import-orders", str(path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(run: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = run.communicate(timeout=120)
    return subprocess.CompletedProcess(run.args, run.returncode, stdout, stderr)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith("tierhouse: ")
    for fragment in fragments:
        assert fragment in message
    return message


def table_rows(url: WarehouseUrl) -> int:
    (exists,) = query(url, "select to_regclass('raw.imported_order_lines') is not null")[0]
    return query(url, "select count(*) from raw.imported_order_lines")[0][0] if exists else 0


# -- uniqueness under concurrency -------------------------------------------------------------
def test_concurrent_imports_of_overlapping_keys_never_commit_a_duplicate(scratch_db, tmp_path: Path) -> None:
    first = write_orders(tmp_path / "a" / "orders_a.csv", range(0, 40_000))
    second = write_orders(tmp_path / "b" / "orders_b.csv", range(20_000, 60_000))
    # two landing areas, as two people importing on two machines against one warehouse
    runs = [start_import(path, cli_env(scratch_db, tmp_path / f"landing_{path.stem}")) for path in (first, second)]
    outputs = [run.communicate(timeout=300) for run in runs]
    for _, stderr in outputs:
        assert "Traceback" not in stderr and "error" not in stderr, stderr
    # the one that took the lock second finds the other's 20,000 keys and quarantines them (exit 3)
    assert sorted(run.returncode for run in runs) == [0, 3]
    assert query(scratch_db, "select count(*), count(distinct (order_id, line_no)) from raw.imported_order_lines") == [
        (60_000, 60_000)
    ]
    manifest = query(
        scratch_db,
        "select file_name, rows_read, rows_loaded, rows_quarantined, amount_read, amount_loaded + amount_quarantined"
        " from raw.load_manifest order by rows_loaded desc",
    )
    assert [row[1:] for row in manifest] == [
        (40_000, 40_000, 0, Decimal("4000000.00"), Decimal("4000000.00")),
        (40_000, 20_000, 20_000, Decimal("4000000.00"), Decimal("4000000.00")),
    ]
    loser = manifest[1][0]
    assert query(scratch_db, "select file_name, reason_code, count(*) from raw.quarantine group by 1, 2") == [
        (loser, "duplicate_order_id", 20_000)
    ]
    (report,) = loaders.load_report(scratch_db)
    assert report.reconciled


BYPASSING_WRITER = """
import sys, psycopg2
conn = psycopg2.connect(sys.argv[1], application_name="bypassing_writer")
with conn.cursor() as cur:
    cur.execute(
        "insert into raw.imported_order_lines (order_id, line_no, ordered_at, channel, quantity, amount, _source_file,"
        " _source_line) values ('K-0000005', 1, '2026-09-03 14:20', 'store', 1, 100.00, 'script', 1)"
    )
    print("inserted", flush=True)
    sys.stdin.readline()
conn.commit()
"""


def test_a_writer_that_bypasses_the_loaders_lock_cannot_commit_a_duplicate_either(scratch_db, tmp_path: Path) -> None:
    """The database's unique index, not only the loaders' lock: a script inserts a key and holds
    its transaction open; an import of a file with that key waits on the index, and once the
    script commits, the import fails with one line and commits nothing."""
    writer = subprocess.Popen(
        [sys.executable, "-c", BYPASSING_WRITER, scratch_db.url()], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stdin is not None
    assert writer.stdout.readline().strip() == "inserted"
    export = write_orders(tmp_path / "orders.csv", range(10))
    run = start_import(export, cli_env(scratch_db, tmp_path / "landing"))
    waiting = "select count(*) from pg_stat_activity where application_name = 'tierhouse' and wait_event_type = 'Lock'"
    deadline = time.monotonic() + 120
    while query(scratch_db, waiting) != [(1,)]:  # the import's COPY waits on the script's uncommitted key
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    writer.stdin.write("commit\n")
    writer.stdin.close()
    assert writer.wait(timeout=60) == 0
    assert_one_line_error(
        finish(run),
        "imports: orders.csv holds a key another writer committed while it loaded",
        "(order_id, line_no)=(K-0000005, 1) already exists",
        "load it again to quarantine the duplicates",
    )
    assert query(scratch_db, "select order_id, _source_file from raw.imported_order_lines") == [("K-0000005", "script")]
    assert query(scratch_db, "select count(*) from raw.load_manifest") == [(0,)]
    # loaded again, the file's copy of the key is quarantined as a duplicate and the rest loads
    assert import_orders(export, cli_env(scratch_db, tmp_path / "landing")).returncode == 3
    assert query(scratch_db, "select count(*), count(distinct (order_id, line_no)) from raw.imported_order_lines") == [(10, 10)]


def test_a_key_repeated_across_batches_of_one_file_is_a_duplicate_line(scratch_db, tmp_path: Path) -> None:
    path = write_orders(tmp_path / "imports" / "long.csv", range(parsing.BATCH_ROWS + 5))
    with path.open("a", newline="") as handle:  # the first line again, in the file's second batch
        handle.write(path.read_text().splitlines()[1] + "\r\n")
    summary = loaders.load_exports(scratch_db, ORDER_IMPORT, path.parent)
    assert (summary.rows_loaded, summary.rows_quarantined) == (parsing.BATCH_ROWS + 5, 1)
    assert query(scratch_db, "select line_number, reason_code, detail from raw.quarantine") == [
        (parsing.BATCH_ROWS + 7, "duplicate_line", "order_id/line_no=K-0000000/1 repeated in the file (first on line 2)")
    ]


# -- atomic landing -----------------------------------------------------------------------------
def test_a_landing_copy_killed_half_way_is_never_loaded(scratch_db, tmp_path: Path) -> None:
    complete = write_orders(tmp_path / "orders_big.csv", range(50_000))
    data = complete.read_bytes()
    pipe = tmp_path / "export" / "orders_big.csv"  # the exporter writes the file while we copy it
    pipe.parent.mkdir()
    os.mkfifo(pipe)
    landing = tmp_path / "landing"
    copier = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sys; from pathlib import Path; from tierhouse.ingest.loaders import import_order_file;"
            " from tierhouse.warehouse.connection import WarehouseUrl;"
            " import_order_file(WarehouseUrl.parse(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))",
            scratch_db.url(), str(pipe), str(landing),
        ],
        env=cli_env(scratch_db, landing),
    )  # fmt: skip
    with pipe.open("wb") as writer:
        writer.write(data[: len(data) // 3])
        writer.flush()
        copier.send_signal(signal.SIGKILL)  # a third copied (less the pipe's buffer): killed mid-copy
        copier.wait(timeout=30)
    landed = sorted((landing / "imports").iterdir())
    assert [p.name for p in landed if not p.name.startswith(".")] == []
    (partial,) = landed
    assert partial.name.endswith(loaders.PARTIAL_SUFFIX) and 0 < partial.stat().st_size < len(data)

    # a load of the whole folder (the ingest DAG) ignores the partial copy
    assert loaders.load_exports(scratch_db, ORDER_IMPORT, landing / "imports").files_seen == 0
    # the next import removes it (its writer is dead) and loads its own file only
    small = write_orders(tmp_path / "small.csv", range(900_000, 900_010))
    result = import_orders(small, cli_env(scratch_db, landing))
    assert result.returncode == 0, result.stderr
    assert "small.csv: 10 lines loaded, 0 quarantined" in result.stdout
    assert f"removed {partial.name}: a partial copy left by a landing that was killed" in result.stderr
    assert [p.name for p in (landing / "imports").iterdir()] == ["small.csv"]
    assert loaders.load_exports(scratch_db, ORDER_IMPORT, landing / "imports").files_seen == 1
    assert query(scratch_db, "select file_name, rows_read from raw.load_manifest") == [("small.csv", 10)]
    # imported again, complete, the big file loads in full
    assert import_orders(complete, cli_env(scratch_db, landing)).returncode == 0
    assert query(scratch_db, "select file_name, rows_loaded from raw.load_manifest order by 1") == [
        ("orders_big.csv", 50_000),
        ("small.csv", 10),
    ]
    assert table_rows(scratch_db) == 50_010


def test_a_partial_copy_still_being_written_or_from_another_machine_is_left_alone(tmp_path: Path) -> None:
    landing = tmp_path / "imports"
    landing.mkdir()
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    names = {
        "writing": f".a.csv.{os.getpid()}@{host}-0123abcd{loaders.PARTIAL_SUFFIX}",
        "other_machine": f".b.csv.{dead.stdout.strip()}@elsewhere.example-0123abcd{loaders.PARTIAL_SUFFIX}",
        "killed": f".c.csv.{dead.stdout.strip()}@{host}-0123abcd{loaders.PARTIAL_SUFFIX}",
    }
    for name in names.values():
        (landing / name).write_bytes(b"order_id")
    assert loaders.remove_abandoned_partials(landing) == [names["killed"]]
    assert sorted(p.name for p in landing.iterdir()) == sorted([names["writing"], names["other_machine"]])


def _user_namespaces_work() -> bool:
    probe = "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d && umount $d && rmdir $d"
    with contextlib.suppress(OSError):
        return (
            subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", probe], capture_output=True).returncode
            == 0
        )
    return False


@pytest.mark.skipif(not shutil.which("unshare") or not _user_namespaces_work(), reason="needs unshare with user namespaces")
def test_a_full_landing_disk_is_one_line_and_loads_nothing(scratch_db, tmp_path: Path) -> None:
    export = write_orders(tmp_path / "orders.csv", range(20_000))  # 1.8 MB
    landing = tmp_path / "landing"
    landing.mkdir()
    # a 1 MiB file system mounted on the landing area, in a namespace of the command's own
    script = (
        'mount -t tmpfs -o size=1m tmpfs "$1" && "$2" import-orders "$3"; code=$?; echo "left: $(ls -A "$1/imports")"; exit $code'
    )
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", str(landing), TIERHOUSE, str(export)],
        env=cli_env(scratch_db, landing),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(result, "cannot land orders.csv", "No space left on device")
    assert result.stdout.strip() == "left:"  # no partial copy stays behind
    assert table_rows(scratch_db) == 0


# -- a file is loaded as landed, or not at all --------------------------------------------------
def test_an_import_loads_the_file_it_was_given_and_nothing_else_in_the_landing_area(scratch_db, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    write_orders(landing / "imports" / "someone_elses.csv", range(100))
    mine = write_orders(tmp_path / "mine.csv", range(1_000, 1_010))
    summary = loaders.import_order_file(scratch_db, mine, landing)
    assert (summary.files_seen, summary.rows_loaded) == (1, 10)
    assert query(scratch_db, "select file_name from raw.load_manifest") == [("mine.csv",)]


def test_a_file_changed_between_landing_and_loading_is_refused(scratch_db, tmp_path: Path) -> None:
    landed = loaders.land_file(write_orders(tmp_path / "orders.csv", range(10)), tmp_path / "imports")
    assert (landed.size, landed.sha256) == (landed.path.stat().st_size, hashlib.sha256(landed.path.read_bytes()).hexdigest())
    with landed.path.open("ab") as handle:
        handle.write(b"K-9999999,1,2026-09-03 14:20:00,store,SH01,VIP1,,WED,wedding,standard,1,100000.00\r\n")
    with pytest.raises(loaders.FileChangedError, match=r"orders.csv changed after it was landed .*; land it again"):
        loaders.load_exports(scratch_db, ORDER_IMPORT, landed.path.parent, landed={landed.path: landed.sha256})
    assert table_rows(scratch_db) == 0


def test_a_file_changed_while_it_is_loaded_is_rolled_back(scratch_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_orders(tmp_path / "imports" / "orders.csv", range(10))
    real_inspect = loaders.inspect_export

    def exporter_still_writing(handle):
        found = real_inspect(handle)
        with path.open("ab") as export:  # the exporter appends once the loader has checked the file
            export.write(b"K-9999999,1,2026-09-03 14:20:00,store,SH01,VIP1,,WED,wedding,standard,1,1.00\r\n")
        return found

    monkeypatch.setattr(loaders, "inspect_export", exporter_still_writing)
    with pytest.raises(loaders.FileChangedError, match="orders.csv changed while it was being loaded"):
        loaders.load_exports(scratch_db, ORDER_IMPORT, path.parent)
    assert table_rows(scratch_db) == 0
    assert query(scratch_db, "select count(*) from raw.load_manifest") == [(0,)]


def test_a_file_refused_at_its_header_is_one_quarantine_row_and_reconciles(scratch_db, tmp_path: Path) -> None:
    path = write_orders(tmp_path / "imports" / "orders.csv", range(300))
    path.write_bytes(path.read_bytes().replace(b"amount\r\n", b"amount,amount\r\n", 1).replace(b"100.00\r\n", b"100.00,1.00\r\n"))
    summary = loaders.load_exports(scratch_db, ORDER_IMPORT, path.parent)
    assert (summary.rows_loaded, summary.rows_quarantined) == (0, 300)
    assert query(scratch_db, "select line_number, reason_code from raw.quarantine") == [(1, "bad_header")]
    assert query(scratch_db, "select rows_read, rows_quarantined, amount_read from raw.load_manifest") == [
        (300, 300, Decimal("0"))
    ]
    (report,) = loaders.load_report(scratch_db)
    assert report.reconciled and report.reasons == {"bad_header": 1}


# -- expected failures are one line ---------------------------------------------------------------
def test_a_connection_lost_mid_load_is_one_line_and_commits_nothing(scratch_db, tmp_path: Path) -> None:
    export = write_orders(tmp_path / "orders.csv", range(150_000))
    run = start_import(export, cli_env(scratch_db, tmp_path / "landing"))
    holder = """
        select l.pid from pg_locks as l join pg_database as d on d.oid = l.database
        where d.datname = current_database() and l.locktype = 'advisory' and l.granted and l.objsubid = 1
          and l.objid::bigint = (hashtext('tierhouse.load.imports')::bigint & 4294967295)
    """
    deadline = time.monotonic() + 120
    while not (loading := query(scratch_db, holder)):
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()
        time.sleep(0.05)
    query(scratch_db, "select pg_terminate_backend(%s)", (loading[0][0],))  # what a server restart does to it
    assert_one_line_error(
        finish(run),
        "imports: the warehouse failed while loading orders.csv (rolled back; files before it are loaded):",
    )
    assert table_rows(scratch_db) == 0
    assert query(scratch_db, "select count(*) from raw.load_manifest") == [(0,)]


def test_a_missing_or_short_pseudonym_key_is_one_line(scratch_db, tmp_path: Path) -> None:
    export = write_orders(tmp_path / "orders.csv", range(5), phone="13800138000")
    missing = import_orders(export, cli_env(scratch_db, tmp_path / "landing", TIERHOUSE_PSEUDONYM_KEY=None))
    assert_one_line_error(missing, "set TIERHOUSE_PSEUDONYM_KEY")
    short = import_orders(export, cli_env(scratch_db, tmp_path / "landing", TIERHOUSE_PSEUDONYM_KEY="short"))
    assert_one_line_error(short, "TIERHOUSE_PSEUDONYM_KEY must be at least 32 bytes")
    assert table_rows(scratch_db) == 0


def test_a_short_pseudonym_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(crypto.KEY_ENV, "x" * (crypto.MIN_KEY_BYTES - 1))
    with pytest.raises(crypto.WeakKeyError):
        crypto.pseudonymise("phone", "13800138000")
    monkeypatch.setenv(crypto.KEY_ENV, "x" * crypto.MIN_KEY_BYTES)
    assert crypto.pseudonymise("phone", "13800138000").startswith("v1:")


def without_root_privileges() -> list[str]:
    """A command prefix under which a file of mode 000 cannot be read: root reads it anyway,
    except in a user namespace of its own, where it keeps no privilege over the host's files."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("unshare") or subprocess.run(["unshare", "--user", "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root needs unshare with user namespaces")
    return ["unshare", "--user"]


def test_an_unreadable_file_or_key_file_is_one_line(scratch_db, tmp_path: Path) -> None:
    export = write_orders(tmp_path / "orders.csv", range(5))
    export.chmod(0o000)
    landing = tmp_path / "landing"
    unreadable = import_orders(export, cli_env(scratch_db, landing), prefix=without_root_privileges())
    assert_one_line_error(unreadable, f"cannot land orders.csv in {landing / 'imports'}: Permission denied")

    readable = write_orders(tmp_path / "readable.csv", range(5))
    state = tmp_path / "state"
    state.mkdir()
    (state / "secrets.json").write_text("{}")
    (state / "secrets.json").chmod(0o000)
    # no key in the environment and no WAREHOUSE_URL: the CLI uses the local key file
    env = cli_env(scratch_db, landing, WAREHOUSE_URL=None, TIERHOUSE_PSEUDONYM_KEY=None, TIERHOUSE_STATE_DIR=str(state))
    no_key_file = import_orders(readable, env, prefix=without_root_privileges())
    assert_one_line_error(no_key_file, f"cannot use the local key file {state / 'secrets.json'}: Permission denied")
    assert table_rows(scratch_db) == 0


def test_a_reconciliation_failure_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def loses_a_row(*_args, **_kwargs):
        raise parsing.ReconciliationError("orders.csv: read 10 rows, loaded 9 + quarantined 0")

    monkeypatch.setattr("tierhouse.ingest.loaders.import_order_file", loses_a_row)
    monkeypatch.setattr(cli_main, "_url", lambda _job: None)
    export = write_orders(tmp_path / "orders.csv", range(10))
    assert cli_main.main(["import-orders", str(export)]) == 2
    assert capsys.readouterr().err == "tierhouse: orders.csv: read 10 rows, loaded 9 + quarantined 0\n"


def test_a_login_without_its_grants_is_one_line_naming_the_fix(scratch_db, tmp_path: Path) -> None:
    export = write_orders(tmp_path / "orders.csv", range(3))
    env = cli_env(scratch_db, tmp_path / "landing")
    query(scratch_db, "revoke usage on schema raw from loader")  # a warehouse migrated, its grants gone
    assert_one_line_error(import_orders(export, env), "permission denied for schema raw", "tierhouse warehouse migrate")
    assert table_rows(scratch_db) == 0
