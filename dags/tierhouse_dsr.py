"""Airflow DAG: carry out one recorded data-subject request (P1 Art. 14, policy 002) — access (an
export of everything held on the customer, each grade with its basis), correction (a new CRM
version the next grading reads), consent withdrawal, or erasure of personal data (pseudonymous
history stays). Its configuration is the request id only: the request itself (customer, reason,
a correction's value encrypted) is recorded in the warehouse first, by ``tierhouse dsr ...
--record-only``, so no personal value reaches Airflow's metadata. Every read of personal data is
in ``audit.access_log``."""

from __future__ import annotations

from airflow.sdk import Param, chain, dag, task

from tierhouse.orchestration import pipeline
from tierhouse.orchestration.defaults import DAG_SETTINGS
from tierhouse.orchestration.tasks import migrate_warehouse


@dag(
    dag_id="tierhouse_dsr",
    schedule=None,
    params={
        "request_id": Param("", type="string", minLength=36, maxLength=36, description="audit.dsr_requests.request_id"),
    },
    tags=["tierhouse", "privacy"],
    doc_md=__doc__,
    **DAG_SETTINGS,
)
def tierhouse_dsr():
    # a request is carried out once (audit.dsr_completions); a retry after a failure is safe
    @task
    def carry_out_request(**context) -> str:
        return pipeline.carry_out_request(context["params"]["request_id"])

    chain(migrate_warehouse(), carry_out_request())


tierhouse_dsr()
