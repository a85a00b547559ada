"""Run in a subprocess by test_dags.py: load the DAG folder the way the dag-processor does and
print what the checks need as JSON. A subprocess keeps Airflow's configuration (read at import
time) separate from the test process."""

from __future__ import annotations

import json
import sys

from airflow.dag_processing.dagbag import DagBag


def main(dag_folder: str) -> None:
    bag = DagBag(dag_folder=dag_folder)
    report = {
        "import_errors": {path: str(error) for path, error in bag.import_errors.items()},
        "parse_seconds": {stat.file: stat.duration.total_seconds() for stat in bag.dagbag_stats},
        "dags": {
            dag_id: {
                "tags": sorted(dag.tags),
                "tasks": {task.task_id: {"owner": task.owner, "retries": task.retries} for task in dag.tasks},
                "max_active_runs": dag.max_active_runs,
            }
            for dag_id, dag in bag.dags.items()
        },
    }
    print("DAG_REPORT " + json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
