"""The dbt project check: the real project passes, and each rule catches what it is for on a
small synthetic manifest (the shape dbt writes, reduced to the keys the check reads)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tierhouse import settings
from tierhouse.devtools.dbt_project_check import (
    DEFAULT_EXCEPTIONS,
    RULES,
    ProjectException,
    apply_exceptions,
    check_manifest,
    load_exceptions,
    main,
    run,
)

PROJECT = "shop_project"


def _model(name: str, path: str, parents: list[str], *, yml: str | None = None, contract: bool = False) -> dict[str, Any]:
    folder = path.rsplit("/", 1)[0]
    return {
        "unique_id": f"model.{PROJECT}.{name}",
        "resource_type": "model",
        "package_name": PROJECT,
        "name": name,
        "path": path,
        "patch_path": f"{PROJECT}://models/{yml or folder + '/_' + folder.rsplit('/', 1)[-1] + '__models.yml'}",
        "description": f"The {name} model.",
        "columns": {"id": {"name": "id", "description": "Key."}},
        "config": {"contract": {"enforced": contract}},
        "depends_on": {"nodes": parents},
    }


def _key_tests(model_id: str) -> dict[str, Any]:
    return {
        f"test.{PROJECT}.{kind}_{model_id}": {
            "unique_id": f"test.{PROJECT}.{kind}_{model_id}",
            "resource_type": "test",
            "package_name": PROJECT,
            "attached_node": model_id,
            "column_name": "id",
            "test_metadata": {"name": kind, "kwargs": {"column_name": "id"}},
            "depends_on": {"nodes": [model_id]},
        }
        for kind in ("unique", "not_null")
    }


def _source(source_name: str, table: str) -> dict[str, Any]:
    return {
        "unique_id": f"source.{PROJECT}.{source_name}.{table}",
        "resource_type": "source",
        "package_name": PROJECT,
        "source_name": source_name,
        "name": table,
        "original_file_path": f"models/staging/{source_name}/_{source_name}__sources.yml",
        "description": "Landed rows.",
        "columns": {"id": {"name": "id", "description": "Key."}},
        "loaded_at_field": "_loaded_at",
        "freshness": {"warn_after": {"count": 2, "period": "day"}, "error_after": {"count": None, "period": None}},
    }


def clean_manifest() -> dict[str, Any]:
    """A small project that follows every rule: two sources, their staging models, an
    intermediate join, a contracted fact and a contracted dimension over one source, an exposure."""
    sources = [_source("pos", "sales"), _source("crm", "members")]
    models = [
        _model("stg_pos__sales", "staging/pos/stg_pos__sales.sql", [f"source.{PROJECT}.pos.sales"]),
        _model("stg_crm__members", "staging/crm/stg_crm__members.sql", [f"source.{PROJECT}.crm.members"]),
        _model(
            "int_sales_by_member",
            "intermediate/int_sales_by_member.sql",
            [f"model.{PROJECT}.stg_pos__sales", f"model.{PROJECT}.stg_crm__members"],
        ),
        _model("fct_sales", "marts/fct_sales.sql", [f"model.{PROJECT}.int_sales_by_member"], contract=True),
        _model("dim_members", "marts/dim_members.sql", [f"model.{PROJECT}.stg_crm__members"], contract=True),
    ]
    nodes: dict[str, Any] = {m["unique_id"]: m for m in models}
    for model in models:
        nodes.update(_key_tests(model["unique_id"]))
    return {
        "metadata": {"project_name": PROJECT},
        "nodes": nodes,
        "sources": {s["unique_id"]: s for s in sources},
        "exposures": {
            f"exposure.{PROJECT}.dashboard": {
                "unique_id": f"exposure.{PROJECT}.dashboard",
                "package_name": PROJECT,
                "name": "dashboard",
                "depends_on": {"nodes": [f"model.{PROJECT}.fct_sales", f"model.{PROJECT}.dim_members"]},
            }
        },
    }


def _node(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return manifest["nodes"][f"model.{PROJECT}.{name}"]


def _drop_tests_of(manifest: dict[str, Any], name: str) -> None:
    model_id = f"model.{PROJECT}.{name}"
    manifest["nodes"] = {k: v for k, v in manifest["nodes"].items() if v.get("attached_node") != model_id}


def _rule_node_pairs(manifest: dict[str, Any]) -> set[tuple[str, str]]:
    return {(finding.rule, finding.node) for finding in check_manifest(manifest)}


def test_the_real_project_passes() -> None:
    assert settings.DBT_MANIFEST.exists(), "run `make manifest` first"
    findings = run(json.loads(settings.DBT_MANIFEST.read_text()), DEFAULT_EXCEPTIONS)
    assert findings == [], "\n".join(map(str, findings))


def test_every_exception_in_the_real_file_gives_a_reason() -> None:
    exceptions, problems = load_exceptions(DEFAULT_EXCEPTIONS)
    assert problems == []
    assert all(len(exception.reason) > 40 for exception in exceptions)


def test_the_synthetic_project_is_clean() -> None:
    assert check_manifest(clean_manifest()) == []


def _set(name: str, /, **changes: Any) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: _node(manifest, name).update(changes)


def _set_source(table_id: str, /, **changes: Any) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: manifest["sources"][f"source.{PROJECT}.{table_id}"].update(changes)


def _add_parent(name: str, parent_id: str) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: _node(manifest, name)["depends_on"]["nodes"].append(parent_id)


def _rename(name: str, new_name: str, new_path: str) -> Callable[[dict[str, Any]], None]:
    return _set(name, name=new_name, path=new_path)


def _expose(parent: str) -> Callable[[dict[str, Any]], None]:
    return lambda manifest: manifest["exposures"][f"exposure.{PROJECT}.dashboard"]["depends_on"]["nodes"].append(
        f"model.{PROJECT}.{parent}"
    )


def _add_model(name: str, path: str, parents: list[str]) -> Callable[[dict[str, Any]], None]:
    """A new, tested and contracted model reading ``parents`` (model names, or full ids)."""

    def add(manifest: dict[str, Any]) -> None:
        parent_ids = [p if "." in p else f"model.{PROJECT}.{p}" for p in parents]
        model = _model(name, path, parent_ids, contract=path.startswith("marts/"))
        manifest["nodes"][model["unique_id"]] = model
        manifest["nodes"].update(_key_tests(model["unique_id"]))

    return add


def _leaf_marts(parent: str, count: int) -> Callable[[dict[str, Any]], None]:
    """``count`` marts that read ``parent`` and that nothing reads."""

    def add(manifest: dict[str, Any]) -> None:
        for n in range(count):
            _add_model(f"fct_report_{n}", f"marts/fct_report_{n}.sql", [parent])(manifest)

    return add


BROKEN_PROJECTS = {
    "model without description": (_set("int_sales_by_member", description="  "), ("missing_description", "int_sales_by_member")),
    "source without description": (_set_source("pos.sales", description=""), ("missing_description", "pos.sales")),
    "column without description": (
        _set("fct_sales", columns={"id": {"name": "id", "description": ""}}),
        ("missing_column_description", "fct_sales"),
    ),
    "model without key tests": (
        lambda m: _drop_tests_of(m, "int_sales_by_member"),
        ("missing_primary_key_test", "int_sales_by_member"),
    ),
    "source read outside staging": (
        _add_parent("int_sales_by_member", f"source.{PROJECT}.pos.sales"),
        ("source_outside_staging", "int_sales_by_member"),
    ),
    "staging model misnamed": (
        _rename("stg_pos__sales", "pos_sales", "staging/pos/pos_sales.sql"),
        ("model_naming", "pos_sales"),
    ),
    "staging model outside a source folder": (
        _rename("stg_pos__sales", "stg_pos__sales", "staging/stg_pos__sales.sql"),
        ("model_naming", "stg_pos__sales"),
    ),
    "intermediate model misnamed": (
        _rename("int_sales_by_member", "sales_by_member", "intermediate/sales_by_member.sql"),
        ("model_naming", "sales_by_member"),
    ),
    "mart misnamed": (_rename("fct_sales", "sales", "marts/sales.sql"), ("model_naming", "sales")),
    "model outside the layers": (_rename("fct_sales", "fct_sales", "reports/fct_sales.sql"), ("model_naming", "fct_sales")),
    "staging model reading another source": (
        _add_parent("stg_pos__sales", f"source.{PROJECT}.crm.members"),
        ("staging_reads_other_source", "stg_pos__sales"),
    ),
    "model declared in another folder's YAML": (
        _set("fct_sales", patch_path=f"{PROJECT}://models/marts/schema.yml"),
        ("yaml_file_naming", "fct_sales"),
    ),
    "source declared outside its staging folder": (
        _set_source("crm.members", original_file_path="models/staging/_sources.yml"),
        ("yaml_file_naming", "crm.members"),
    ),
    "mart joining staging to intermediate": (
        _add_parent("fct_sales", f"model.{PROJECT}.stg_pos__sales"),
        ("mart_reads_staging", "fct_sales"),
    ),
    "mart joining two sources' staging": (
        _add_parent("dim_members", f"model.{PROJECT}.stg_pos__sales"),
        ("mart_reads_staging", "dim_members"),
    ),
    "mart without enforced contract": (
        _set("dim_members", config={"contract": {"enforced": False}}),
        ("contract_not_enforced", "dim_members"),
    ),
    "exposure on an intermediate model": (_expose("int_sales_by_member"), ("exposure_reads_unpublished", "dashboard")),
    "exposure on an uncontracted mart": (
        _set("fct_sales", config={"contract": {"enforced": False}}),
        ("exposure_reads_unpublished", "dashboard"),
    ),
    "source without freshness": (
        _set_source("pos.sales", freshness={"warn_after": {"count": None, "period": None}, "error_after": {}}),
        ("missing_source_freshness", "pos.sales"),
    ),
    "source without loaded_at_field": (
        _set_source("crm.members", loaded_at_field=None),
        ("missing_source_freshness", "crm.members"),
    ),
    # stg_crm__members -> int_sales_by_member -> fct_sales, and stg_crm__members -> fct_sales
    "model rejoining a concept its only reader also reads": (
        _add_parent("fct_sales", f"model.{PROJECT}.stg_crm__members"),
        ("rejoining_of_upstream_concepts", "int_sales_by_member"),
    ),
    "model feeding three leaf models": (_leaf_marts("int_sales_by_member", 3), ("model_fanout", "int_sales_by_member")),
    "model with no parents": (_set("dim_members", depends_on={"nodes": []}), ("root_model", "dim_members")),
    "model reading a source and a model": (
        _add_parent("stg_pos__sales", f"model.{PROJECT}.stg_crm__members"),
        ("direct_join_to_source", "stg_pos__sales"),
    ),
}


@pytest.mark.parametrize("breakage", BROKEN_PROJECTS.values(), ids=BROKEN_PROJECTS.keys())
def test_each_rule_catches_its_breakage(breakage: tuple[Callable[[dict[str, Any]], None], tuple[str, str]]) -> None:
    break_project, expected = breakage
    manifest = clean_manifest()
    break_project(manifest)
    assert expected in _rule_node_pairs(manifest)


def test_every_rule_has_a_breakage_test() -> None:
    assert {expected[0] for _, expected in BROKEN_PROJECTS.values()} == set(RULES)


def test_a_mart_over_one_sources_staging_alone_is_fine() -> None:
    # dim_members reads only stg_crm__members: no intermediate model is needed in between
    assert ("mart_reads_staging", "dim_members") not in _rule_node_pairs(clean_manifest())


def test_a_rejoin_through_a_model_that_feeds_others_too_is_fine() -> None:
    # int_sales_by_member is shared logic once a second model reads it
    manifest = clean_manifest()
    _add_parent("fct_sales", f"model.{PROJECT}.stg_crm__members")(manifest)
    _add_model("fct_member_totals", "marts/fct_member_totals.sql", ["int_sales_by_member"])(manifest)
    assert not {pair for pair in _rule_node_pairs(manifest) if pair[0] == "rejoining_of_upstream_concepts"}


def test_an_exposure_is_no_second_use_of_a_rejoined_model() -> None:
    manifest = clean_manifest()
    _add_parent("fct_sales", f"model.{PROJECT}.stg_crm__members")(manifest)
    _expose("int_sales_by_member")(manifest)
    assert ("rejoining_of_upstream_concepts", "int_sales_by_member") in _rule_node_pairs(manifest)


def test_two_leaf_models_are_no_fanout() -> None:
    manifest = clean_manifest()
    _leaf_marts("int_sales_by_member", 2)(manifest)
    assert check_manifest(manifest) == []


def test_a_model_an_exposure_reads_is_no_leaf() -> None:
    manifest = clean_manifest()
    _leaf_marts("int_sales_by_member", 3)(manifest)
    _expose("fct_report_0")(manifest)
    assert check_manifest(manifest) == []


def test_a_fanout_of_models_that_feed_others_is_fine() -> None:
    manifest = clean_manifest()
    _leaf_marts("int_sales_by_member", 3)(manifest)
    _add_model("fct_summary", "marts/fct_summary.sql", ["fct_report_1", "fct_report_2"])(manifest)
    assert check_manifest(manifest) == []


def test_a_model_reading_only_a_seed_is_no_root() -> None:
    manifest = clean_manifest()
    _set("dim_members", depends_on={"nodes": [f"seed.{PROJECT}.ref_regions"]})(manifest)
    assert ("root_model", "dim_members") not in _rule_node_pairs(manifest)


def test_a_source_next_to_a_seed_is_no_direct_join() -> None:
    # a seed is a lookup the staging model may use; only a model next to a source is flagged
    manifest = clean_manifest()
    _add_parent("stg_pos__sales", f"seed.{PROJECT}.ref_stores")(manifest)
    assert check_manifest(manifest) == []


def test_a_model_may_be_declared_in_its_own_yaml_beside_it() -> None:
    manifest = clean_manifest()
    _set("fct_sales", patch_path=f"{PROJECT}://models/marts/fct_sales.yml")(manifest)
    assert check_manifest(manifest) == []


def test_a_model_level_primary_key_test_proves_a_grain() -> None:
    manifest = clean_manifest()
    _drop_tests_of(manifest, "int_sales_by_member")
    model_id = f"model.{PROJECT}.int_sales_by_member"
    manifest["nodes"]["test.grain"] = {
        "unique_id": "test.grain",
        "resource_type": "test",
        "attached_node": model_id,
        "column_name": None,
        "test_metadata": {"name": "primary_key", "kwargs": {"columns": ["member_id", "sale_id"]}},
        "depends_on": {"nodes": [model_id]},
    }
    assert check_manifest(manifest) == []


def test_unique_without_not_null_is_not_a_key() -> None:
    manifest = clean_manifest()
    manifest["nodes"] = {k: v for k, v in manifest["nodes"].items() if not k.startswith(f"test.{PROJECT}.not_null_")}
    assert ("missing_primary_key_test", "fct_sales") in _rule_node_pairs(manifest)


def test_installed_packages_are_not_checked() -> None:
    manifest = clean_manifest()
    foreign = copy.deepcopy(_node(manifest, "fct_sales"))
    foreign.update(unique_id="model.some_package.report", package_name="some_package", name="report", description="")
    manifest["nodes"][foreign["unique_id"]] = foreign
    assert check_manifest(manifest) == []


# --- exceptions -----------------------------------------------------------------------------


def _broken_manifest() -> dict[str, Any]:
    """One finding: dim_members joins two sources' staging models."""
    manifest = clean_manifest()
    _add_parent("dim_members", f"model.{PROJECT}.stg_pos__sales")(manifest)
    return manifest


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exceptions.yml"
    path.write_text(text)
    return path


def test_an_exception_with_a_reason_excuses_its_finding(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "exceptions:\n  - {rule: mart_reads_staging, node: dim_members, reason: a lookup joined where used}\n"
    )
    assert run(_broken_manifest(), path) == []


def test_an_exception_without_a_reason_fails(tmp_path: Path) -> None:
    path = _write(tmp_path, "exceptions:\n  - {rule: mart_reads_staging, node: dim_members, reason: ' '}\n")
    pairs = {(f.rule, f.node) for f in run(_broken_manifest(), path)}
    # the finding stands, and the exception itself is reported
    assert pairs == {("mart_reads_staging", "dim_members"), ("exception_without_reason", "dim_members")}


def test_an_exception_with_no_reason_key_fails(tmp_path: Path) -> None:
    exceptions, problems = load_exceptions(_write(tmp_path, "exceptions:\n  - {rule: mart_reads_staging, node: dim_members}\n"))
    assert exceptions == []
    assert [(p.rule, p.node) for p in problems] == [("exception_without_reason", "dim_members")]


def test_a_stale_exception_is_reported() -> None:
    findings = apply_exceptions([], [ProjectException("mart_reads_staging", "fct_gone", "was needed once")])
    assert [(f.rule, f.node) for f in findings] == [("stale_exception", "fct_gone")]


def test_an_exception_to_an_unknown_rule_fails(tmp_path: Path) -> None:
    _, problems = load_exceptions(_write(tmp_path, "exceptions:\n  - {rule: no_such_rule, node: x, reason: because}\n"))
    assert [(p.rule, p.node) for p in problems] == [("exception_unknown_rule", "x")]


def test_a_malformed_exceptions_file_fails(tmp_path: Path) -> None:
    _, problems = load_exceptions(_write(tmp_path, "- just a list\n"))
    assert [p.rule for p in problems] == ["exceptions_file_invalid"]


# --- command line ---------------------------------------------------------------------------


def test_main_prints_rule_node_message_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(_broken_manifest()))
    code = main(["--manifest", str(manifest_path), "--exceptions", str(tmp_path / "none.yml")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines == [
        "mart_reads_staging  dim_members  reads stg_crm__members directly next to other inputs; join it in an intermediate model",
        "mart_reads_staging  dim_members  reads stg_pos__sales directly next to other inputs; join it in an intermediate model",
    ]


def test_main_passes_a_clean_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(clean_manifest()))
    assert main(["--manifest", str(manifest_path), "--exceptions", str(tmp_path / "none.yml")]) == 0
    assert capsys.readouterr().out == ""
