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

#: Airflow connection id through which DAG tasks and Cosmos reach the warehouse.
WAREHOUSE_CONN_ID = "tierhouse_warehouse"

#: Schemas, in data-flow order. dbt writes staging/intermediate/marts; Python writes the rest.
RAW_SCHEMA = "raw"
SHOP_SCHEMA = "shop"  # stands in for the online shop's operational database
PUBLISHED_SCHEMA = "published"
