"""Where things live. Every path can be overridden from the environment so a deployment
(docker-compose, Kubernetes) can mount the project anywhere."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("TIERHOUSE_HOME", Path(__file__).resolve().parents[2]))
DATA_DIR = Path(os.environ.get("TIERHOUSE_DATA_DIR", PROJECT_ROOT / "data"))
STATE_DIR = Path(os.environ.get("TIERHOUSE_STATE_DIR", PROJECT_ROOT / ".warehouse"))
DBT_PROJECT_DIR = Path(os.environ.get("TIERHOUSE_DBT_PROJECT_DIR", PROJECT_ROOT / "dbt_project"))
DBT_MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"
EXPECTATIONS_DIR = Path(os.environ.get("TIERHOUSE_EXPECTATIONS_DIR", PROJECT_ROOT / "expectations"))
POLICIES_DIR = Path(os.environ.get("TIERHOUSE_POLICIES_DIR", PROJECT_ROOT / "policies"))

#: Airflow connection id of the migrate step (the admin login); every other job has its own,
#: ``tierhouse_warehouse_<job>`` (:func:`warehouse_conn_id`), holding that job's login.
WAREHOUSE_CONN_ID = "tierhouse_warehouse"


#: Environment variables that hold secrets: the keys, every login's password, an admin URL.
#: Code that starts dbt or Airflow removes them from the child's environment (:func:`without_secrets`).
SECRET_ENV_PATTERNS = ("TIERHOUSE_PSEUDONYM_KEY", "TIERHOUSE_PII_KEY", "_PASSWORD", "WAREHOUSE_URL", "AIRFLOW_CONN_")
#: Values that ship in examples and templates: a secret set to one of them is refused at start-up.
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "change_me", "change-me-to-a-long-random-string", "secret", "password"}
)
#: The secrets .env.example lists; start-up refuses a placeholder in any of them.
SECRET_SETTINGS = (
    "AIRFLOW_DB_PASSWORD", "WAREHOUSE_DB_PASSWORD", "AIRFLOW_JWT_SECRET", "TIERHOUSE_PSEUDONYM_KEY", "TIERHOUSE_PII_KEY",
    *(f"TIERHOUSE_{job}_PASSWORD" for job in ("INGEST", "DBT", "PUBLISH", "GATE", "BI", "AUDIT", "STEWARD", "REVIEW")),
)  # fmt: skip


def is_secret_env(name: str) -> bool:
    return any(pattern in name for pattern in SECRET_ENV_PATTERNS)


def without_secrets(env: dict[str, str]) -> dict[str, str]:
    """``env`` without any secret (:data:`SECRET_ENV_PATTERNS`): for a child that needs none."""
    return {name: value for name, value in env.items() if not is_secret_env(name)}


def placeholder_secrets(env: dict[str, str]) -> list[str]:
    """The secrets of ``env`` (those it sets among :data:`SECRET_SETTINGS`) still holding an
    example value such as ``change-me``."""
    return [name for name in SECRET_SETTINGS if name in env and env[name].strip().lower() in PLACEHOLDER_SECRETS]


def warehouse_conn_id(job: str) -> str:
    """The Airflow connection id of one warehouse job (tierhouse.warehouse.connection.JOBS)."""
    return WAREHOUSE_CONN_ID if job == "migrate" else f"{WAREHOUSE_CONN_ID}_{job}"


#: Schemas, in data-flow order. dbt writes staging/intermediate/marts; Python writes the rest.
RAW_SCHEMA = "raw"
SHOP_SCHEMA = "shop"  # stands in for the online shop's operational database
PUBLISHED_SCHEMA = "published"
