"""A real local Airflow deployment (``make airflow``, ``tierhouse airflow start|stop|status``).

The four Airflow 3 components run as separate processes — api-server, scheduler, dag-processor
and triggerer — with the LocalExecutor, as docker-compose.yml runs them. Their metadata database
is on the embedded PostgreSQL (the warehouse's server), in a database of its own owned by a login
of its own: never SQLite, never the warehouse superuser. The DAGs see the project's settings
exactly as ``airflow dags test`` does (tierhouse.orchestration.local_airflow: the DAG folder, the
plugins, one ``tierhouse_warehouse_<job>`` connection per job login in a 0600 file).

Everything lives under one folder (``.airflow/deployment`` by default): the pid file and log of
each component in ``run/`` and ``logs/``, the secrets (metadata password, JWT and API keys, the
admin password) in ``secrets/`` (0700, files 0600). The secrets reach Airflow through ``_CMD``
settings that read those files, so no task's environment holds them. ``stop`` signals only the
process groups it started, named by their pid files.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tierhouse.errors import TierhouseError
from tierhouse.orchestration.local_airflow import DEFAULT_AIRFLOW_HOME, LocalAirflow, airflow_executable
from tierhouse.warehouse.connection import WarehouseUrl, _free_port, _port_is_free, session

DEFAULT_HOME = DEFAULT_AIRFLOW_HOME / "deployment"
DEFAULT_PORT = 8080
#: The metadata database and the login that owns it (the same name, on the warehouse's server).
METADATA_DB = "tierhouse_airflow"
ADMIN_USER = "admin"
#: Each component and its command line; logs are served from the shared folder, not over HTTP.
COMPONENTS = {
    "api-server": ("api-server",),
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),
}
#: The health endpoint's name of each component but the api-server (which answers it).
HEALTH_KEYS = ("metadatabase", "scheduler", "dag_processor", "triggerer")
#: Tasks at once: one laptop, and every dbt task is a process of its own.
PARALLELISM = os.environ.get("TIERHOUSE_AIRFLOW_PARALLELISM", "4")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DeploymentError(TierhouseError, RuntimeError):
    """The local Airflow deployment could not be started, reached or stopped."""


@dataclass(frozen=True)
class ComponentState:
    name: str
    pid: int | None

    @property
    def running(self) -> bool:
        return self.pid is not None


@dataclass(frozen=True)
class Deployment:
    """One local Airflow deployment talking to one warehouse (``warehouse``: its admin URL)."""

    warehouse: WarehouseUrl
    home: Path = DEFAULT_HOME
    metadata_db: str = METADATA_DB
    extra_env: tuple[tuple[str, str], ...] = ()
    requested_port: int | None = None

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.metadata_db):
            raise DeploymentError(f"metadata database name {self.metadata_db!r} must be a lower-case SQL identifier")

    # -- files --------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def passwords_file(self) -> Path:
        """The simple auth manager's users and passwords (Airflow reads and may add to it)."""
        return self.secrets_dir / "simple_auth_manager_passwords.json"

    def pid_file(self, component: str) -> Path:
        return self.run_dir / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    def _secret(self, name: str, make: Callable[[], str]) -> Path:
        """A secret file of the deployment, made once (0600 in a 0700 folder)."""
        self.secrets_dir.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.chmod(0o700)
        path = self.secrets_dir / name
        if not path.exists():
            _write_private(path, make())
        return path

    # -- settings -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The api-server's port: chosen once (the first free one from the requested port) and kept."""
        state = self.home / "deployment.json"
        if state.exists():
            return int(json.loads(state.read_text())["port"])
        requested = self.requested_port or int(os.environ.get("TIERHOUSE_AIRFLOW_PORT", DEFAULT_PORT))
        port = _free_port(requested)
        self.home.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"port": port}) + "\n")
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metadata_url(self) -> WarehouseUrl:
        password = os.environ.get("AIRFLOW_DB_PASSWORD") or self._secret("metadata_password", _token).read_text()
        return WarehouseUrl(self.warehouse.host, self.warehouse.port, self.metadata_db, password, self.metadata_db)

    def env(self) -> dict[str, str]:
        """The environment of every component: the project's Airflow settings (local_airflow)
        plus what a deployment adds; secrets only as commands that read their files."""
        sql_alchemy_conn = self.secrets_dir / "sql_alchemy_conn"
        _write_private(sql_alchemy_conn, self.metadata_url().url("postgresql+psycopg2"))
        jwt_secret = os.environ.get("AIRFLOW_JWT_SECRET")
        jwt_file = self._secret("jwt_secret", _token)
        if jwt_secret:  # a deployment's own secret wins over the generated one
            _write_private(jwt_file, jwt_secret)
        env = LocalAirflow(self.warehouse, self.home, self.extra_env).env()
        env.pop("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")  # it would win over the _CMD setting
        env.pop("AIRFLOW_JWT_SECRET", None)
        env.update(
            {
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": _cat(sql_alchemy_conn),
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": PARALLELISM,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY_CMD": _cat(self._secret("api_secret_key", _token)),
                # the scheduler signs each task's token with it and the api-server checks it
                "AIRFLOW__API_AUTH__JWT_SECRET_CMD": _cat(jwt_file),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.log_dir),
            }
        )
        return env

    def admin_password(self) -> str:
        passwords = self._secret(self.passwords_file.name, lambda: json.dumps({ADMIN_USER: _token()}))
        return json.loads(passwords.read_text())[ADMIN_USER]

    # -- processes ----------------------------------------------------------------------------
    def states(self) -> list[ComponentState]:
        return [ComponentState(name, _own_pid(self.pid_file(name), COMPONENTS[name][0])) for name in COMPONENTS]

    def start(self, timeout_s: float = 300.0) -> list[ComponentState]:
        """Start the components not already running, then wait until Airflow reports each healthy.
        Starting a running deployment changes nothing."""
        missing = [state.name for state in self.states() if not state.running]
        if missing:
            self.admin_password()
            env = self.env()
            ensure_metadata_database(self.warehouse, self.metadata_url())
            self._migrate(env)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            if "api-server" in missing and not _port_is_free(self.port):
                raise DeploymentError(
                    f"port {self.port} is taken by another process: free it, or remove {self.home / 'deployment.json'}"
                    " and set TIERHOUSE_AIRFLOW_PORT"
                )
            for name in missing:
                self._spawn(name, env)
        self.wait_until_healthy(timeout_s)
        return self.states()

    def _migrate(self, env: dict[str, str]) -> None:
        """``airflow db migrate``, once per metadata database and Airflow version."""
        from importlib.metadata import version

        marker = self.home / f".migrated-{self.metadata_db}-{version('apache-airflow-core')}"
        if marker.exists():
            return
        result = subprocess.run([airflow_executable(), "db", "migrate"], env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DeploymentError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        marker.write_text("ok\n")

    def _spawn(self, name: str, env: dict[str, str]) -> None:
        with self.log_file(name).open("ab") as log:
            # a session (and so a process group) of its own: stop signals the component and its
            # children (api-server workers, executor workers, parsers), and nothing else
            process = subprocess.Popen(
                [airflow_executable(), *COMPONENTS[name]],
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file(name).write_text(f"{process.pid}\n")

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """One call to the REST API (``/api/v2/...``) as the admin user."""
        token = _request("POST", f"{self.url}/auth/token", {"username": ADMIN_USER, "password": self.admin_password()})
        return _request(method, f"{self.url}{path}", body, token["access_token"])

    def health(self) -> dict:
        """The api-server's health report, or {} while it does not answer."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
                return json.load(response)
        except (urllib.error.URLError, OSError, ValueError):
            return {}

    def wait_until_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if dead := [state.name for state in self.states() if not state.running]:
                raise DeploymentError(f"airflow {', '.join(dead)} stopped: {self._log_tails(dead)}")
            report = self.health()
            if report and all((report.get(key) or {}).get("status") == "healthy" for key in HEALTH_KEYS):
                return
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"airflow not healthy after {timeout_s:.0f} s ({report or 'no answer'}); logs in {self.log_dir}"
                )
            time.sleep(2)

    def _log_tails(self, names: list[str]) -> str:
        tails = []
        for name in names:
            path = self.log_file(name)
            lines = path.read_text(errors="replace").splitlines()[-15:] if path.exists() else []
            tails.append(f"\n--- {path}\n" + "\n".join(lines))
        return "".join(tails)

    def stop(self, timeout_s: float = 60.0) -> list[str]:
        """SIGTERM to each component's process group, SIGKILL to what is left after ``timeout_s``;
        returns the components stopped. Only pids from this deployment's pid files are signalled."""
        running = {state.name: state.pid for state in self.states() if state.pid is not None}
        for pid in running.values():
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while any(_alive(pid) for pid in running.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in running.values():
            if _alive(pid):
                _signal_group(pid, signal.SIGKILL)
        for name in COMPONENTS:
            self.pid_file(name).unlink(missing_ok=True)
        return list(running)


def ensure_metadata_database(admin: WarehouseUrl, metadata: WarehouseUrl) -> None:
    """The metadata login (with ``metadata``'s password) and its database on the warehouse's
    server, made by the warehouse's admin login; only that login may connect to it."""
    name = metadata.dbname
    with session(admin) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_roles where rolname = %s", (name,))
            verb = "alter" if cur.fetchone() else "create"
            cur.execute(f'{verb} role "{name}" login nosuperuser nocreatedb nocreaterole password %s', (metadata.password,))
            cur.execute("select 1 from pg_database where datname = %s", (name,))
            if not cur.fetchone():
                cur.execute(f'create database "{name}" owner "{name}"')
                cur.execute(f'revoke all on database "{name}" from public')


def drop_metadata_database(admin: WarehouseUrl, name: str) -> None:
    """Remove a metadata database and its login (the deployment must be stopped)."""
    if not _IDENTIFIER.match(name):
        raise DeploymentError(f"metadata database name {name!r} must be a lower-case SQL identifier")
    with session(admin) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
            cur.execute(f'drop role if exists "{name}"')


def _request(method: str, url: str, body: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers, method=method), timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise DeploymentError(f"{method} {url}: HTTP {error.code} {error.read().decode(errors='replace')[:500]}") from None


def _token() -> str:
    return secrets.token_hex(32)


def _cat(path: Path) -> str:
    return f"cat {shlex.quote(str(path))}"


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (no trailing newline: Airflow reads the file as the value), 0600 from the start."""
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temp, path)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs. A zombie has stopped: our child is reaped; one an earlier command
    started waits for its new parent (which, in a container, may never reap it)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # the state follows the command name in parentheses


def _own_pid(pid_file: Path, command: str) -> int | None:
    """The pid in ``pid_file`` if that process still runs ``airflow <command>``; a stale file (the
    process ended, or its pid now belongs to another program) is removed."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        # a component may rewrite its title (setproctitle), so its words are looked for, not argv
        words = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
    except OSError:
        words = []
    names = {command.encode(), command.replace("-", "_").encode()}  # the api-server calls itself "airflow api_server"
    if _alive(pid) and any(word.endswith(b"airflow") for word in words) and names & set(words):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        # each component leads its own process group (start_new_session); signal the leader alone otherwise
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
