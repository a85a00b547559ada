"""The dbt project's structural rules, checked on dbt's manifest so they need no database.

``python -m tierhouse.devtools.dbt_project_check [--manifest PATH] [--exceptions PATH]`` (run by
``make lint`` after ``dbt parse``) prints one line per finding, ``RULE  node  message``, and
exits 1 if there is any. The rules are those of dbt-project-evaluator that matter here, applied
by us because the package cannot be installed in this project's environment:

``missing_description``
    Every model, seed and source table has a description.
``missing_column_description``
    Every column declared in YAML has a description. Contracted models declare every column
    (dbt refuses a contract otherwise), so the published marts are documented column by column;
    staging and intermediate models declare at least their key columns. Requiring every column of
    every model would need the warehouse's catalog, which a lint must not depend on.
``missing_primary_key_test``
    Every model tests its grain: ``unique`` and ``not_null`` on one column, or a model-level
    ``primary_key`` test (``tests/generic/primary_key.sql``; dbt_utils'
    ``unique_combination_of_columns`` counts too) on the columns that make a row.
``source_outside_staging``
    Only staging models read sources; everything else reads staging models.
``model_naming``
    ``staging/<source>/stg_<source>__<entity>``, ``intermediate/int_<name>``,
    ``marts/dim_<name>`` or ``marts/fct_<name>``.
``staging_reads_other_source``
    A staging model reads only the source its folder is named after.
``yaml_file_naming``
    A model is declared beside its SQL, in ``<model>.yml`` (with its unit tests, as jaffle-shop
    does) or in its folder's ``_<folder>__models.yml``; a staging folder's source in its
    ``_<source>__sources.yml``.
``mart_reads_staging``
    A mart built on intermediate models (or on several sources) does not also reach into a
    source's staging models: that join belongs in an intermediate model. A mart over one source's
    staging models alone (a plain dimension) may read them directly.
``contract_not_enforced``
    Every mart is published (BI tools, the GE publish gate and the exposures read them), so each
    enforces its contract.
``exposure_reads_unpublished``
    Exposures depend only on published models: marts with an enforced contract.
``missing_source_freshness``
    Every source table has a freshness threshold and a ``loaded_at_field`` to measure it on.

The DAG rules follow dbt-project-evaluator's SQL (``models/marts/dag/``) on the same graph:
models, seeds, sources and exposures, without tests.

``rejoining_of_upstream_concepts``
    No model B that feeds only one model C, where C also reads one of B's own parents A
    directly (A -> B -> C and A -> C): B's logic belongs in C as a CTE, or C should read A
    only through B. Exposures do not count as a second use of B. Reported on B.
``model_fanout``
    No node feeds ``MODEL_FANOUT_THRESHOLD`` (3, the package's ``models_fanout_threshold``) or
    more leaf models, models nothing reads (an exposure counts as a reader): a chain of
    near-copies at the end of the DAG belongs in one model, or in the BI tool. Reported on
    the parent.
``root_model``
    Every model reads a source, a seed or another model; one with no parents reads tables dbt
    cannot see.
``direct_join_to_source``
    A model reads sources or models, never both: the source goes through its staging model.

Deliberate exceptions live in one reviewed file, ``dbt_project/project_check_exceptions.yml``:
each entry names a rule, a node (a model, seed or exposure name; ``<source>.<table>`` for a
source table) and a mandatory reason. An entry without a reason (``exception_without_reason``),
with an unknown rule (``exception_unknown_rule``), malformed (``exceptions_file_invalid``) or
that no longer matches a finding (``stale_exception``) is itself a finding, so the file cannot
rot; these cannot be excepted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from tierhouse import settings

RULES = {
    "missing_description": "every model, seed and source table has a description",
    "missing_column_description": "every column declared in YAML has a description",
    "missing_primary_key_test": "every model tests its grain (unique + not_null, or primary_key)",
    "source_outside_staging": "only staging models read sources",
    "model_naming": "staging/<source>/stg_<source>__<entity>, intermediate/int_*, marts/dim_* or marts/fct_*",
    "staging_reads_other_source": "a staging model reads only its folder's source",
    "yaml_file_naming": "models in _<folder>__models.yml, sources in staging/<source>/_<source>__sources.yml",
    "mart_reads_staging": "a mart on intermediate models or several sources does not read staging models directly",
    "contract_not_enforced": "every (published) mart enforces its contract",
    "exposure_reads_unpublished": "exposures depend only on contracted marts",
    "missing_source_freshness": "every source table has a freshness threshold and a loaded_at_field",
    "rejoining_of_upstream_concepts": "no model feeds only one model that also reads the first one's parent directly",
    "model_fanout": "no node feeds 3 or more leaf models",
    "root_model": "every model reads a source, a seed or another model",
    "direct_join_to_source": "a model reads sources or models, not both",
}
DEFAULT_EXCEPTIONS = settings.DBT_PROJECT_DIR / "project_check_exceptions.yml"

STAGING, INTERMEDIATE, MARTS = "staging", "intermediate", "marts"
#: The layer BI tools, exposures and the publish gate read; what it holds is published.
PUBLISHED_LAYER = MARTS
#: Model-level generic tests that prove a grain of several columns.
GRAIN_TESTS = {"primary_key", "unique_combination_of_columns"}
#: dbt-project-evaluator's ``models_fanout_threshold`` default; its SQL flags a parent at this
#: many leaf children or more.
MODEL_FANOUT_THRESHOLD = 3


@dataclass(frozen=True, order=True)
class Finding:
    rule: str
    node: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}  {self.node}  {self.message}"


@dataclass(frozen=True)
class ProjectException:
    rule: str
    node: str
    reason: str


# --- reading the manifest -------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """What the rules need to know about one model of our own project."""

    unique_id: str
    name: str
    path: PurePosixPath  # relative to the model path, e.g. staging/pos/stg_pos__sales_lines.sql
    patch_path: str | None  # the YAML file that declares it, relative to the project
    description: str
    columns: dict[str, Any]
    contract_enforced: bool
    parents: tuple[str, ...]

    @property
    def layer(self) -> str:
        return self.path.parts[0] if len(self.path.parts) > 1 else ""


class Project:
    """The parts of a manifest (a ``dict`` as dbt writes it) that belong to the root project."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        package = manifest.get("metadata", {}).get("project_name")

        def own(kind: str) -> list[dict[str, Any]]:
            # installed packages (dbt_packages/) follow their own conventions
            return [item for item in manifest.get(kind, {}).values() if package is None or item.get("package_name") == package]

        nodes = own("nodes")
        self.models = {n["unique_id"]: _model(n) for n in nodes if n["resource_type"] == "model"}
        self.seeds = [n for n in nodes if n["resource_type"] == "seed"]
        self.tests = [n for n in manifest.get("nodes", {}).values() if n["resource_type"] == "test"]
        self.sources = own("sources")
        self.exposures = own("exposures")
        #: every node's direct children in the DAG: models and exposures (tests are not part of it)
        self.children: dict[str, set[str]] = defaultdict(set)
        for model in self.models.values():
            for parent_id in model.parents:
                self.children[parent_id].add(model.unique_id)
        for exposure in self.exposures:
            for parent_id in exposure.get("depends_on", {}).get("nodes", []):
                self.children[parent_id].add(exposure["unique_id"])

    def child_models(self, unique_id: str) -> set[str]:
        return {child for child in self.children.get(unique_id, ()) if child in self.models}

    def is_leaf(self, unique_id: str) -> bool:
        """Nothing reads it: no model and no exposure."""
        return not self.children.get(unique_id)

    def name_of(self, unique_id: str) -> str:
        if unique_id in self.models:
            return self.models[unique_id].name
        return unique_id.split(".", 2)[-1]

    def tests_on(self, unique_id: str) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
        """(test name, column or None for a model-level test, kwargs) of every generic test on a node."""
        for test in self.tests:
            metadata = test.get("test_metadata")
            if not metadata:
                continue  # a singular test proves no particular grain
            attached = test.get("attached_node") or next(iter(test.get("depends_on", {}).get("nodes", [])), None)
            if attached == unique_id:
                yield metadata["name"], test.get("column_name"), metadata.get("kwargs", {})


def _model(node: dict[str, Any]) -> Model:
    patch_path = node.get("patch_path")
    return Model(
        unique_id=node["unique_id"],
        name=node["name"],
        path=PurePosixPath(node["path"]),
        patch_path=patch_path.split("://", 1)[-1] if patch_path else None,
        description=node.get("description") or "",
        columns=node.get("columns") or {},
        contract_enforced=bool((node.get("config", {}).get("contract") or {}).get("enforced")),
        parents=tuple(node.get("depends_on", {}).get("nodes", [])),
    )


def _source_label(source: dict[str, Any]) -> str:
    return f"{source['source_name']}.{source['name']}"


def _is_blank(text: str | None) -> bool:
    return not (text or "").strip()


# --- the rules ------------------------------------------------------------------------------


def check_documentation(project: Project) -> Iterator[Finding]:
    for model in project.models.values():
        if _is_blank(model.description):
            yield Finding("missing_description", model.name, "model has no description")
        for column_name, column in model.columns.items():
            if _is_blank(column.get("description")):
                yield Finding("missing_column_description", model.name, f"column {column_name} has no description")
    for seed in project.seeds:
        if _is_blank(seed.get("description")):
            yield Finding("missing_description", seed["name"], "seed has no description")
    for source in project.sources:
        if _is_blank(source.get("description")):
            yield Finding("missing_description", _source_label(source), "source table has no description")
        for column_name, column in (source.get("columns") or {}).items():
            if _is_blank(column.get("description")):
                yield Finding("missing_column_description", _source_label(source), f"column {column_name} has no description")


def check_primary_key_tests(project: Project) -> Iterator[Finding]:
    for model in project.models.values():
        column_tests: dict[str, set[str]] = {}
        has_grain_test = False
        for test_name, column, _kwargs in project.tests_on(model.unique_id):
            if column:
                column_tests.setdefault(column, set()).add(test_name)
            if test_name in GRAIN_TESTS:
                has_grain_test = True
        has_key_column = any({"unique", "not_null"} <= names for names in column_tests.values())
        if not (has_key_column or has_grain_test):
            yield Finding(
                "missing_primary_key_test",
                model.name,
                "no column with both unique and not_null tests, and no model-level primary_key test",
            )


def check_layers(project: Project) -> Iterator[Finding]:
    for model in project.models.values():
        yield from _check_naming(model)
        sources_read = [p for p in model.parents if p.startswith("source.")]
        if sources_read and model.layer != STAGING:
            for source_id in sources_read:
                yield Finding(
                    "source_outside_staging",
                    model.name,
                    f"reads source {project.name_of(source_id)}; read its staging model instead",
                )
        if model.layer == STAGING and len(model.path.parts) == 3:
            folder_source = model.path.parts[1]
            for source_id in sources_read:
                source_name = source_id.split(".")[2]
                if source_name != folder_source:
                    yield Finding(
                        "staging_reads_other_source",
                        model.name,
                        f"reads source {project.name_of(source_id)} but lives in staging/{folder_source}/",
                    )
        if model.layer == MARTS:
            yield from _check_mart_inputs(project, model)


def _check_naming(model: Model) -> Iterator[Finding]:
    parts, stem = model.path.parts, model.path.stem
    if model.layer == STAGING:
        if len(parts) != 3:
            yield Finding("model_naming", model.name, f"{model.path}: staging models live in staging/<source>/")
        elif not re.fullmatch(rf"stg_{re.escape(parts[1])}__[a-z0-9_]+", stem):
            yield Finding("model_naming", model.name, f"{model.path}: expected stg_{parts[1]}__<entity>")
    elif model.layer == INTERMEDIATE:
        if not stem.startswith("int_"):
            yield Finding("model_naming", model.name, f"{model.path}: expected int_<name>")
    elif model.layer == MARTS:
        if not stem.startswith(("dim_", "fct_")):
            yield Finding("model_naming", model.name, f"{model.path}: expected dim_<name> or fct_<name>")
    else:
        yield Finding("model_naming", model.name, f"{model.path}: models live in staging/, intermediate/ or marts/")


def _check_mart_inputs(project: Project, mart: Model) -> Iterator[Finding]:
    parents = [project.models[p] for p in mart.parents if p in project.models]
    staging = [p for p in parents if p.layer == STAGING]
    staging_sources = {p.path.parts[1] if len(p.path.parts) == 3 else "" for p in staging}
    if staging and (len(staging) < len(parents) or len(staging_sources) > 1):
        for parent in staging:
            yield Finding(
                "mart_reads_staging",
                mart.name,
                f"reads {parent.name} directly next to other inputs; join it in an intermediate model",
            )


def check_contracts_and_exposures(project: Project) -> Iterator[Finding]:
    for model in project.models.values():
        if model.layer == PUBLISHED_LAYER and not model.contract_enforced:
            yield Finding("contract_not_enforced", model.name, "published mart without contract: {enforced: true}")
    for exposure in project.exposures:
        for parent_id in exposure.get("depends_on", {}).get("nodes", []):
            parent = project.models.get(parent_id)
            if parent is None or parent.layer != PUBLISHED_LAYER or not parent.contract_enforced:
                yield Finding(
                    "exposure_reads_unpublished",
                    exposure["name"],
                    f"depends on {project.name_of(parent_id)}, which is not a contracted mart",
                )


def check_dag(project: Project) -> Iterator[Finding]:
    for model in project.models.values():
        if not model.parents:
            yield Finding("root_model", model.name, "reads nothing through ref() or source(); name its inputs so dbt sees them")
        sources_read = sorted(project.name_of(p) for p in model.parents if p.startswith("source."))
        models_read = sorted(project.name_of(p) for p in model.parents if p.startswith("model."))
        if sources_read and models_read:
            yield Finding(
                "direct_join_to_source",
                model.name,
                f"reads source {', '.join(sources_read)} next to {', '.join(models_read)}; read the source through its staging model",
            )
        readers = project.child_models(model.unique_id)
        if len(readers) == 1:
            (reader_id,) = readers
            reader = project.models[reader_id]
            for rejoined_id in sorted(set(model.parents) & set(reader.parents)):
                yield Finding(
                    "rejoining_of_upstream_concepts",
                    model.name,
                    f"feeds only {reader.name}, which reads {project.name_of(rejoined_id)} directly as well;"
                    f" fold {model.name} into {reader.name} as a CTE",
                )
    for parent_id, children in sorted(project.children.items()):
        leaves = sorted(project.models[c].name for c in children if c in project.models and project.is_leaf(c))
        if len(leaves) >= MODEL_FANOUT_THRESHOLD:
            yield Finding(
                "model_fanout",
                project.name_of(parent_id),
                f"feeds {len(leaves)} leaf models ({', '.join(leaves)}); build what they share once, or leave it to the BI tool",
            )


def check_yaml_files(project: Project) -> Iterator[Finding]:
    for model in project.models.values():
        if model.patch_path is None:
            continue  # undeclared: missing_description already says so
        folder = model.path.parent
        beside, folder_file = f"models/{folder}/{model.name}.yml", f"models/{folder}/_{folder.name}__models.yml"
        if model.patch_path not in (beside, folder_file):
            yield Finding("yaml_file_naming", model.name, f"declared in {model.patch_path}; expected {beside} or {folder_file}")
    for source in project.sources:
        expected = f"models/{STAGING}/{source['source_name']}/_{source['source_name']}__sources.yml"
        if source.get("original_file_path") != expected:
            yield Finding(
                "yaml_file_naming", _source_label(source), f"declared in {source.get('original_file_path')}; expected {expected}"
            )


def check_source_freshness(project: Project) -> Iterator[Finding]:
    for source in project.sources:
        # dbt 1.10+ writes the threshold under config as well; older manifests only at the top
        freshness = source.get("freshness") or (source.get("config") or {}).get("freshness") or {}
        thresholds = [freshness.get(key) or {} for key in ("warn_after", "error_after")]
        if not any(threshold.get("count") and threshold.get("period") for threshold in thresholds):
            yield Finding("missing_source_freshness", _source_label(source), "no warn_after or error_after freshness threshold")
        if _is_blank(source.get("loaded_at_field")) and _is_blank(source.get("loaded_at_query")):
            yield Finding("missing_source_freshness", _source_label(source), "no loaded_at_field to measure freshness on")


CHECKS = (
    check_documentation,
    check_primary_key_tests,
    check_layers,
    check_dag,
    check_yaml_files,
    check_contracts_and_exposures,
    check_source_freshness,
)


def check_manifest(manifest: dict[str, Any]) -> list[Finding]:
    """Every finding of every rule, before exceptions."""
    project = Project(manifest)
    return sorted({finding for check in CHECKS for finding in check(project)})


# --- exceptions -----------------------------------------------------------------------------


def load_exceptions(path: Path) -> tuple[list[ProjectException], list[Finding]]:
    """The exceptions in ``path`` (none if it does not exist) and the problems with the file."""
    if not path.exists():
        return [], []
    document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = document.get("exceptions") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return [], [Finding("exceptions_file_invalid", path.name, "expected a mapping with an `exceptions` list")]
    exceptions, problems = [], []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or _is_blank(entry.get("rule")) or _is_blank(entry.get("node")):
            problems.append(
                Finding("exceptions_file_invalid", f"{path.name}[{index}]", "each exception needs rule, node and reason")
            )
            continue
        rule, node, reason = str(entry["rule"]), str(entry["node"]), str(entry.get("reason") or "")
        if rule not in RULES:
            problems.append(Finding("exception_unknown_rule", node, f"{rule} is not a rule of this check"))
        elif _is_blank(reason):
            problems.append(Finding("exception_without_reason", node, f"the exception to {rule} gives no reason"))
        else:
            exceptions.append(ProjectException(rule, node, reason.strip()))
    return exceptions, problems


def apply_exceptions(findings: Iterable[Finding], exceptions: Iterable[ProjectException]) -> list[Finding]:
    """Findings no exception covers, plus a ``stale_exception`` for every exception nothing matched."""
    excepted = {(e.rule, e.node) for e in exceptions}
    findings = list(findings)
    remaining = [f for f in findings if (f.rule, f.node) not in excepted]
    matched = {(f.rule, f.node) for f in findings}
    stale = [
        Finding("stale_exception", node, f"no {rule} finding left to excuse; remove the exception")
        for rule, node in sorted(excepted - matched)
    ]
    return sorted(remaining + stale)


def run(manifest: dict[str, Any], exceptions_path: Path) -> list[Finding]:
    """What ``main`` reports: findings after exceptions, and the exceptions file's own problems."""
    exceptions, problems = load_exceptions(exceptions_path)
    return sorted(apply_exceptions(check_manifest(manifest), exceptions) + problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tierhouse.devtools.dbt_project_check", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=settings.DBT_MANIFEST, help="dbt's manifest.json (default: %(default)s)")
    parser.add_argument("--exceptions", type=Path, default=DEFAULT_EXCEPTIONS, help="reviewed exceptions (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.manifest.exists():
        print(f"{args.manifest} is missing: run `make manifest` (dbt parse) first", file=sys.stderr)
        return 2
    findings = run(json.loads(args.manifest.read_text(encoding="utf-8")), args.exceptions)
    for finding in findings:
        print(finding)
    print(f"dbt project check: {len(findings)} finding(s)", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
