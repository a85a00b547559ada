"""Great Expectations gates.

Suites live in ``expectations/suites/*.json`` and checkpoints in ``expectations/checkpoints/*.yml``,
so a data engineer adds an expectation by editing a reviewed file. Each run builds an ephemeral
GX context against the warehouse: nothing GX writes outlives the run, and the warehouse URL
(with its password) is never written to disk. What a gate reports (its outcome, each failed
expectation, :class:`~tierhouse.gates.QualityGateFailed`) is defined in :mod:`tierhouse.gates`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from tierhouse import settings
from tierhouse.gates import CheckpointError, CheckpointOutcome, ExpectationFailure, QualityGateFailed
from tierhouse.warehouse.connection import WarehouseUrl

log = logging.getLogger(__name__)
# GX logs every internal registration at INFO; keep the task logs about our data.
logging.getLogger("great_expectations").setLevel(logging.WARNING)
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_@.:/-]{1,100}$")
_SAFE_IDENT = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$")


def load_checkpoint_spec(name: str, root: Path | None = None) -> dict:
    path = (root or settings.EXPECTATIONS_DIR) / "checkpoints" / f"{name}.yml"
    if not path.exists():
        raise CheckpointError(f"no checkpoint {name!r} at {path}")
    return yaml.safe_load(path.read_text())


def load_suite_spec(name: str, root: Path | None = None) -> dict:
    return json.loads(((root or settings.EXPECTATIONS_DIR) / "suites" / f"{name}.json").read_text())


def _batch_query(table: str, where: dict[str, str] | None, params: dict[str, str]) -> str | None:
    if not _SAFE_IDENT.match(table):
        raise CheckpointError(f"bad table name {table!r} in checkpoint")
    if not where:
        return None
    clauses = []
    for column, param in where.items():
        value = params.get(param)
        if value is None:
            raise CheckpointError(f"checkpoint needs parameter {param!r}")
        if not _SAFE_IDENT.match(column) or not _SAFE_VALUE.match(str(value)):
            raise CheckpointError(f"unsafe filter {column}={value!r}")
        clauses.append(f"{column} = '{value}'")
    return f"select * from {table} where {' and '.join(clauses)}"


def _expectation_parameters(spec: dict, now: datetime | None, supplied: dict | None) -> dict:
    """Values expectations refer to as ``{"$PARAMETER": ...}``, fixed at run time."""
    now = now or datetime.now(UTC)
    values: dict = dict(supplied or {})
    missing = [name for name in spec.get("expectation_parameters", []) if name not in values]
    if missing:
        raise CheckpointError(f"checkpoint {spec['name']} needs expectation parameters {missing}")
    hours = spec.get("freshness_hours")
    if hours:
        values["fresh_since"] = (now - timedelta(hours=hours)).isoformat()
    return values


def _source_validations(spec: dict, sources: Mapping[str, int | None] | None, now: datetime | None) -> list[tuple[dict, dict]]:
    """The checkpoint's validations, each with the values that replace its suite's parameters.

    A validation that names its ``source`` (ingest_raw) runs only when ``sources`` (the enabled
    sources, tierhouse.yml) has it, with that source's own freshness window as ``fresh_since``,
    or without its freshness expectation when the window is None. ``sources=None``: every one."""
    chosen: list[tuple[dict, dict]] = []
    for validation in spec["validations"]:
        source = validation.get("source")
        if sources is None or source is None:
            chosen.append((validation, {}))
        elif source in sources:
            hours = sources[source]
            since = None if hours is None else ((now or datetime.now(UTC)) - timedelta(hours=hours)).isoformat()
            chosen.append((validation, {"fresh_since": since}))
    return chosen


def _with_values(expectation: dict, values: dict) -> dict | None:
    """The expectation with ``values`` written into its kwargs in place of their parameters;
    None when it needs a parameter whose value is None (a check switched off)."""
    kwargs = {}
    for key, value in expectation["kwargs"].items():
        name = value.get("$PARAMETER") if isinstance(value, dict) else None
        if name in values:
            if values[name] is None:
                return None
            value = values[name]
        kwargs[key] = value
    return {**expectation, "kwargs": kwargs}


#: The Data Docs site `make docs` builds (tierhouse.lifecycle.docs)
DATA_DOCS_SITE = "tierhouse"


def _context(url: WarehouseUrl, data_docs_dir: Path | None = None):
    """An ephemeral GX context on the warehouse; with ``data_docs_dir``, a local Data Docs site there."""
    # imported once a checkpoint is known to run: Great Expectations takes seconds to import
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    if data_docs_dir is not None:
        context.add_data_docs_site(
            site_name=DATA_DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(data_docs_dir)},
            },
        )
    return context, context.data_sources.add_postgres("warehouse", connection_string=url.url())


def run_checkpoint(
    url: WarehouseUrl,
    name: str,
    params: dict[str, str] | None = None,
    root: Path | None = None,
    now: datetime | None = None,
    expectation_parameters: dict | None = None,
    sources: Mapping[str, int | None] | None = None,
) -> CheckpointOutcome:
    """Run a checkpoint and return its outcome; :func:`gate` raises on failure instead. ``sources``
    limits a checkpoint over sources to those, each with its freshness window in hours."""
    spec = _runnable_spec(name, root)
    parameters = _expectation_parameters(spec, now, expectation_parameters)
    validations = _source_validations(spec, sources, now)
    if not validations:
        log.info("checkpoint %s: no enabled source to check", name)
        return CheckpointOutcome(name, True, 0, ())
    context, source = _context(url)
    return _run(context, source, spec, validations, params or {}, root, parameters)


def run_with_data_docs(
    url: WarehouseUrl, runs: list[tuple[str, dict[str, str], dict | None]], site_dir: Path
) -> list[CheckpointOutcome]:
    """Run each (checkpoint, params, expectation parameters) in one context and render every
    result as Great Expectations Data Docs under ``site_dir`` (``index.html``)."""
    # every run's spec and parameters are checked before Great Expectations starts
    ready = [(spec, params, _expectation_parameters(spec, None, supplied)) for spec, (_, params, supplied) in
             zip([_runnable_spec(name) for name, _, _ in runs], runs, strict=True)]  # fmt: skip
    context, source = _context(url, site_dir)
    outcomes = [
        _run(context, source, spec, _source_validations(spec, None, None), params, None, parameters, label=f"{index}:")
        for index, (spec, params, parameters) in enumerate(ready)
    ]
    # GX's KL-divergence renderer cannot draw a distribution passed as a run-time parameter (the
    # drift gate's); it logs a traceback and renders that expectation's result without the chart
    renderer_log = logging.getLogger("great_expectations.render.renderer.content_block.content_block")
    level = renderer_log.level
    renderer_log.setLevel(logging.CRITICAL)
    try:
        context.build_data_docs(site_names=[DATA_DOCS_SITE])
    finally:
        renderer_log.setLevel(level)
    return outcomes


def _runnable_spec(name: str, root: Path | None = None) -> dict:
    spec = load_checkpoint_spec(name, root)
    if "built_at_run_time_by" in spec:
        raise CheckpointError(f"checkpoint {name} has no fixed suite; run it with {spec['built_at_run_time_by']}")
    return spec


def _run(
    context,
    source,
    spec: dict,
    validations: list[tuple[dict, dict]],
    params: dict[str, str],
    root: Path | None,
    parameters: dict,
    label: str = "",
) -> CheckpointOutcome:
    """One checkpoint in ``context``; ``label`` keeps its suites and assets apart from other runs'."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    name = spec["name"]
    validation_definitions = []
    for index, (validation, values) in enumerate(validations):
        suite_spec = load_suite_spec(validation["suite"], root)
        suite = gx.ExpectationSuite(name=f"{label}{suite_spec['name']}#{index}", meta=suite_spec.get("meta", {}))
        for expectation in filter(None, (_with_values(e, values) for e in suite_spec["expectations"])):
            suite.add_expectation_configuration(
                ExpectationConfiguration(type=expectation["type"], kwargs=expectation["kwargs"], meta=expectation.get("meta"))
            )
        suite = context.suites.add(suite)
        table = validation["table"]
        query = _batch_query(table, validation.get("where"), params)
        asset_name = f"{label}{table}#{index}"
        if query:
            asset = source.add_query_asset(asset_name, query=query)
        else:
            schema, _, table_name = table.rpartition(".")
            asset = source.add_table_asset(asset_name, table_name=table_name, schema_name=schema or None)
        batch = asset.add_batch_definition_whole_table("whole")
        validation_definitions.append(
            context.validation_definitions.add(gx.ValidationDefinition(name=f"{label}{name}#{index}", data=batch, suite=suite))
        )
    checkpoint = context.checkpoints.add(gx.Checkpoint(name=f"{label}{name}", validation_definitions=validation_definitions))
    result = checkpoint.run(expectation_parameters=parameters)

    failures, evaluated = [], 0
    for run in result.run_results.values():
        suite_name = run.suite_name.removeprefix(label).split("#")[0]
        for item in run.results:
            evaluated += 1
            if not item.success:
                observed = item.result.get("observed_value", item.result.get("unexpected_count"))
                if item.exception_info and item.exception_info.get("raised_exception"):
                    observed = f"error: {item.exception_info.get('exception_message')}"
                failures.append(
                    ExpectationFailure(suite_name, item.expectation_config.type, dict(item.expectation_config.kwargs), observed)
                )
    outcome = CheckpointOutcome(name, bool(result.success), evaluated, tuple(failures))
    log.info(
        "checkpoint %s: %s (%d expectations, %d failed)",
        name,
        "passed" if outcome.success else "FAILED",
        evaluated,
        len(failures),
    )
    return outcome


def tier_audit_parameters(policy: str) -> dict:
    """The expectation parameters of ``publish_customer_tiers`` for a policy: every tier any of
    its versions may give (``none`` included) and its versions, from the policy files."""
    from tierhouse.grading.policy import NO_TIER, UnknownPolicy, discover

    versions = [p for p in discover() if p.name == policy]
    if not versions:
        raise UnknownPolicy(f"no policy file for {policy!r}")
    tiers = sorted({tier.code for p in versions for tier in p.tiers} | {NO_TIER})
    return {"tiers": tiers, "policy_versions": [p.version for p in versions]}


def gate(
    url: WarehouseUrl,
    name: str,
    params: dict[str, str] | None = None,
    expectation_parameters: dict | None = None,
    sources: Mapping[str, int | None] | None = None,
) -> CheckpointOutcome:
    """Run a checkpoint and raise :class:`QualityGateFailed` unless every expectation holds."""
    outcome = run_checkpoint(url, name, params, expectation_parameters=expectation_parameters, sources=sources)
    if not outcome.success:
        lines = "\n  ".join(str(f) for f in outcome.failures) or "(checkpoint failed without a failed expectation)"
        raise QualityGateFailed(
            f"checkpoint {name} failed {len(outcome.failures)} of {outcome.evaluated} expectations:\n  {lines}"
        )
    return outcome
