"""Airflow DAG: carry out one data-subject request (P1 Art. 14, policy 002) — access (an export
of everything held on the customer, each grade with its basis), correction (a new CRM version the
next grading reads), consent withdrawal, or erasure of personal data (pseudonymous history
stays). Triggered by hand with the request as its configuration; every request is recorded in
``audit.dsr_requests`` and every read of personal data in ``audit.access_log``."""

from __future__ import annotations

from airflow.sdk import Param, chain, dag, task

from tierhouse.orchestration import pipeline
from tierhouse.orchestration.defaults import DAG_SETTINGS
from tierhouse.orchestration.tasks import migrate_warehouse

DSR_KINDS = ["access", "correction", "consent_withdrawal", "erasure"]


@dag(
    dag_id="tierhouse_dsr",
    schedule=None,
    params={
        "kind": Param("access", enum=DSR_KINDS),
        "customer": Param("", type="string", minLength=1, description="member id"),
        "requested_by": Param("", type="string", minLength=1, description="who handles the request"),
        "reason": Param("", type="string", minLength=1, description="the customer's request"),
        "field": Param(None, type=["null", "string"], description="correction: customer_type, name, phone or address"),
        "value": Param(None, type=["null", "string"], description="correction: the correct value"),
    },
    tags=["tierhouse", "privacy"],
    doc_md=__doc__,
    **DAG_SETTINGS,
)
def tierhouse_dsr():
    # each request is one transaction: a failed attempt leaves nothing behind, so a retry is safe
    @task
    def carry_out_request(**context) -> str:
        p = context["params"]
        return pipeline.data_subject_request(p["kind"], p["customer"], p["requested_by"], p["reason"], p["field"], p["value"])

    chain(migrate_warehouse(), carry_out_request())


tierhouse_dsr()
