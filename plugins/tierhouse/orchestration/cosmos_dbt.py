"""Cosmos wiring: the dbt project rendered as Airflow tasks from a pre-built manifest."""

from __future__ import annotations

from typing import Any

from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior
from cosmos.profiles.postgres.user_pass import PostgresUserPasswordProfileMapping

from tierhouse import settings
from tierhouse.errors import TierhouseError
from tierhouse.grading.transform import acquire_dbt_build_lock, dbt_executable
from tierhouse.privacy import access

#: The build lock's connection while this task process runs its dbt model
_held_lock: list = []


def take_dbt_build_lock(context: Any) -> None:
    """Before each dbt task: the warehouse-wide build lock (tierhouse.grading.transform), so a
    model task of one DAG run and one of another (the month-end run and a backfill) never rebuild
    the same relation at once. Released after the task, or when its process ends, failed or killed."""
    from tierhouse.orchestration.pipeline import warehouse_url

    # `airflow dags test` runs every task in one process and skips post_execute when a task
    # fails: a lock left by an earlier task would make this one wait for itself
    release_dbt_build_lock(context)
    _held_lock.append(acquire_dbt_build_lock(warehouse_url("dbt")))


def release_dbt_build_lock(context: Any, result: Any = None) -> None:
    while _held_lock:
        _held_lock.pop().close()


class WarehouseProfileMapping(PostgresUserPasswordProfileMapping):
    """Cosmos's Postgres mapping, except that a trust-auth warehouse may have no password."""

    required_fields = ["host", "user", "dbname"]

    def get_dbt_value(self, name: str) -> Any:
        value = super().get_dbt_value(name)
        return "" if name == "password" and value is None else value


class ManifestMissing(TierhouseError, FileNotFoundError):
    """The dbt manifest Cosmos renders the DAGs from has not been built."""


def profile_config() -> ProfileConfig:
    return ProfileConfig(
        profile_name="tierhouse",
        target_name="airflow",
        profile_mapping=WarehouseProfileMapping(
            conn_id=settings.warehouse_conn_id("dbt"), profile_args={"schema": "analytics", "role": access.DBT_ROLE}
        ),
    )


def dbt_build_group(group_id: str = "dbt_build", **kwargs: Any) -> DbtTaskGroup:
    """One ``dbt build`` task per model (model, then its unit and data tests), in dependency order."""
    if not settings.DBT_MANIFEST.exists():
        raise ManifestMissing(f"{settings.DBT_MANIFEST} is missing: run `make manifest` (dbt parse) before loading the DAGs")
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=settings.DBT_PROJECT_DIR,
            manifest_path=settings.DBT_MANIFEST,
            install_dbt_deps=False,
        ),
        profile_config=profile_config(),
        execution_config=ExecutionConfig(
            execution_mode=ExecutionMode.LOCAL,
            invocation_mode=InvocationMode.DBT_RUNNER,
            dbt_executable_path=dbt_executable(),
        ),
        # Cosmos would emit an Asset per model named after the warehouse host and port; the
        # project declares its own stable Assets (tierhouse.orchestration.assets) instead. The
        # switch lives in RenderConfig: Cosmos copies it over any `emit_datasets` in operator_args.
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.BUILD, emit_datasets=False),
        operator_args={"install_deps": False, "pre_execute": take_dbt_build_lock, "post_execute": release_dbt_build_lock},
        **kwargs,
    )
