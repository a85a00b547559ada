"""Settings every tierhouse DAG shares, read from the environment at parse time (no I/O)."""

from __future__ import annotations

import os
from datetime import timedelta

# Local runs (`airflow dags test`, the demo, the tests) shorten the delay so a failing task
# fails in seconds; a deployment keeps the default.
RETRY_DELAY = timedelta(seconds=int(os.environ.get("TIERHOUSE_RETRY_DELAY_SECONDS", "300")))

DEFAULT_ARGS = {"owner": "data-engineering", "retries": 2, "retry_delay": RETRY_DELAY}
TIMEZONE = "Asia/Shanghai"
