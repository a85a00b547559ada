"""Airflow Assets that chain the DAGs: ingest updates raw sales, grading consumes them."""

from __future__ import annotations

from airflow.sdk import Asset

RAW_SALES = Asset(name="tierhouse_raw_sales", uri="tierhouse://warehouse/raw/sales", group="tierhouse")
PUBLISHED_TIERS = Asset(name="tierhouse_published_tiers", uri="tierhouse://warehouse/published/customer_tiers", group="tierhouse")
