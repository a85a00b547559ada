"""Run in a subprocess by test_dags.py: parse every DAG file the way the dag-processor does and
print what the checks need as JSON. A subprocess keeps Airflow's configuration (read at import
time) separate from the test process.

Each file is parsed in a child forked from this process after Airflow itself is imported, as the
dag-processor does (it pre-imports the Airflow modules a DAG file uses, then forks one child per
file). Airflow's plugins (provider entry points such as Cosmos's UI plugin, which imports
FastAPI) are loaded here too: Airflow loads them lazily once per process, whichever code first
asks (Cosmos, when it reads the manifest), and their cost depends on the installed providers, not
on the DAG file. So a file's parse time is its own cost, with its own imports (Cosmos, the dbt
manifest, tierhouse) counted, Airflow's start-up not counted, and no file profiting from another.
Each file is parsed three times and the fastest counts: other work on a busy machine only ever
adds time, so the minimum is the file's cost and the check does not flake under load.

In the child every way out of the process fails and is recorded: Python sockets (HTTP clients,
DNS lookups) and psycopg2 (libpq opens its sockets in C, beyond the socket module). A DAG file must
not reach a database or the network when it is parsed, only when its tasks run.
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import airflow.sdk  # noqa: F401  (the pre-import, see above)
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import plugins_manager

CHILD_TIMEOUT_SECONDS = 120
PARSES_PER_FILE = 3


class NetworkDisabledError(OSError):
    """Raised instead of connecting while a DAG file is parsed."""


def forbid_network(attempts: list[str]) -> None:
    def refuse(what: str):
        def refused(*args: Any, **_kwargs: Any) -> Any:
            target = [arg for arg in args if not isinstance(arg, socket.socket)][:2]
            attempts.append(f"{what}{tuple(target)!r}")
            raise NetworkDisabledError(f"{what} while parsing DAG files: no network or database at parse time")

        return refused

    socket.socket.connect = refuse("socket.connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse("socket.connect_ex")  # type: ignore[method-assign]
    socket.getaddrinfo = refuse("socket.getaddrinfo")
    socket.gethostbyname = refuse("socket.gethostbyname")
    try:
        import psycopg2
    except ImportError:
        return
    psycopg2.connect = refuse("psycopg2.connect")


def parse_file(path: Path) -> dict[str, Any]:
    attempts: list[str] = []
    forbid_network(attempts)
    bag = DagBag(dag_folder=str(path))
    return {
        "import_errors": {str(file): str(error) for file, error in bag.import_errors.items()},
        "parse_seconds": sum(stat.duration.total_seconds() for stat in bag.dagbag_stats),
        "network_calls": attempts,
        "dags": {
            dag_id: {
                "file": path.name,
                "tags": sorted(dag.tags),
                "owner": dag.default_args.get("owner"),
                "retries": dag.default_args.get("retries"),
                "tasks": {
                    task.task_id: {
                        "owner": task.owner,
                        "retries": task.retries,
                        "outlets": sorted(str(getattr(outlet, "uri", outlet)) for outlet in task.outlets),
                        # Cosmos's dbt operators add an Asset per model at run time when this is set
                        "emit_datasets": getattr(task, "emit_datasets", None),
                        "upstream": sorted(task.upstream_task_ids),
                        "hooks": [
                            getattr(getattr(task, f"_{when}_execute_hook", None), "__name__", None) for when in ("pre", "post")
                        ],
                    }
                    for task in dag.tasks
                },
                "max_active_runs": dag.max_active_runs,
                "params": dag.params.dump(),
            }
            for dag_id, dag in bag.dags.items()
        },
    }


def _child(path: Path, connection: Connection) -> None:
    try:
        connection.send(parse_file(path))
    except BaseException as error:  # reported as the file's import error, whatever it is
        connection.send({"import_errors": {str(path): f"{type(error).__name__}: {error}"}})
    finally:
        connection.close()


def parse_in_fork(path: Path) -> dict[str, Any]:
    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_child, args=(path, sender))
    child.start()
    sender.close()
    result = receiver.recv() if receiver.poll(CHILD_TIMEOUT_SECONDS) else None
    child.join(CHILD_TIMEOUT_SECONDS)
    if result is None:
        child.kill()
        return {"import_errors": {str(path): f"parsing did not finish (exit code {child.exitcode})"}}
    return result


def main(dag_folder: str) -> None:
    plugins_manager.integrate_macros_plugins()  # loads every plugin once, see above
    report: dict[str, Any] = {"import_errors": {}, "parse_seconds": {}, "network_calls": {}, "dags": {}}
    for path in sorted(Path(dag_folder).glob("*.py")):
        parsed = parse_in_fork(path)
        report["import_errors"].update(parsed.get("import_errors", {}))
        if "parse_seconds" in parsed:
            repeats = [parse_in_fork(path).get("parse_seconds", parsed["parse_seconds"]) for _ in range(PARSES_PER_FILE - 1)]
            report["parse_seconds"][path.name] = min(parsed["parse_seconds"], *repeats)
        if parsed.get("network_calls"):
            report["network_calls"][path.name] = parsed["network_calls"]
        report["dags"].update(parsed.get("dags", {}))
    print("DAG_REPORT " + json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
