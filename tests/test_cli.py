"""The command line reports an expected error (bad input, a refused step) as one line on stderr
and a non-zero exit, never a traceback; an unexpected error keeps its traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tierhouse.cli import main as cli
from tierhouse.warehouse.connection import WarehouseUrl

TIERHOUSE = Path(sys.executable).with_name("tierhouse")


def tierhouse(*args: str, warehouse: WarehouseUrl | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``tierhouse`` command as a user would."""
    env = {**os.environ, **({"WAREHOUSE_URL": warehouse.url()} if warehouse else {})}
    return subprocess.run([str(TIERHOUSE), *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.splitlines() == [f"tierhouse: {message}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("summary", "--period", "2026-13"), "period must look like YYYY-MM, got '2026-13'"),
        (("explain", "C0001", "--period", "October"), "period must look like YYYY-MM, got 'October'"),
        (("generate", "--customers", "1", "--out", "{tmp}"), "customers and months must be at least 2"),
        (("generate", "--end", "2026-11-31", "--out", "{tmp}"), "'2026-11-31' is not a day; expected YYYY-MM-DD"),
        (("import-orders", "{tmp}/missing.csv"), "no such file: {tmp}/missing.csv"),
        (("seed-shop", "--dir", "{tmp}/shop"), "no such directory: {tmp}/shop (`tierhouse generate` writes it)"),
        (("check", "ingest_raw", "--param", "policy"), "--param takes key=value, got ['policy']"),
        (
            ("import", "tills", "{tmp}/x.csv"),
            "unknown source 'tills'; sources: pos, crm, payments, custom_orders, feedback, imports, shop",
        ),
        (("import", "crm", "{tmp}/missing.csv"), "no such file: {tmp}/missing.csv"),
        (
            ("import", "shop", "{tmp}/x.csv"),
            "shop is read from the online shop's database by the ingest DAG, not imported from files",
        ),
    ],
)
def test_bad_input_is_one_line_without_a_traceback(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = tierhouse(*(arg.format(tmp=tmp_path) for arg in args))
    assert_one_line_error(result, message.format(tmp=tmp_path))


def test_a_disabled_source_and_a_bad_configuration_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "tierhouse.yml"
    export = tmp_path / "tills.csv"
    export.write_text("receipt_no\n")
    env = {**os.environ, "TIERHOUSE_CONFIG": str(config)}
    config.write_text("sources:\n  crm: {}\n  imports: {}\n")
    result = subprocess.run([str(TIERHOUSE), "import", "pos", str(export)], capture_output=True, text=True, env=env, check=False)
    assert_one_line_error(result, f"source 'pos' is not enabled in {config}; enable it under `sources:` there")
    config.write_text("sources:\n  crm: {enabled: true, folder: crm}\n")
    result = subprocess.run([str(TIERHOUSE), "import", "crm", str(export)], capture_output=True, text=True, env=env, check=False)
    assert_one_line_error(result, f"{config}: sources.crm.folder: unknown key; sources.crm takes enabled, path, freshness_hours")


def test_refusals_from_the_warehouse_side_are_one_line_too(server_url: WarehouseUrl) -> None:
    appeal = ("appeal", "file", "--policy", "no_such_policy", "--period", "2026-10", "--customer", "C0001")
    result = tierhouse(*appeal, "--request", "re-check my grade", "--recorded-by", "Service Desk", warehouse=server_url)
    assert_one_line_error(result, "no policy file for 'no_such_policy'")
    result = tierhouse("review", "add", "--period", "2026-10", warehouse=server_url)
    assert_one_line_error(result, "review add needs --customer --tier --reviewer --reason")
    result = tierhouse("check", "no_such_checkpoint", warehouse=server_url)
    assert result.stderr.startswith("tierhouse: no checkpoint 'no_such_checkpoint' at ")
    assert_one_line_error(result, result.stderr.strip().removeprefix("tierhouse: "))


def test_an_unexpected_error_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_args) -> int:
        raise KeyError("a bug, not a user's mistake")

    monkeypatch.setattr(cli, "cmd_summary", broken)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["summary"])
