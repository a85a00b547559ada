"""`make bench SCALE=small`, end to end at a tiny size: every step runs, results.json holds each
measurement the issue asks for, the report renders, and the project, the bare-SQL floor and the
pandas reference give the same P1 tiers. Speed is never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tierhouse import settings
from tierhouse.devtools import bench_report
from tierhouse.warehouse.connection import WarehouseUrl

pytestmark = [pytest.mark.e2e, pytest.mark.bench]

STEPS = set(bench_report.STEP_ORDER)


def test_small_bench_measures_every_step_and_the_three_graders_agree(server_url: WarehouseUrl, tmp_path: Path) -> None:
    results, doc = tmp_path / "results.json", tmp_path / "BENCHMARK.md"
    doc.write_text("# Benchmark\n\nProse above the generated section stays.\n", encoding="utf-8")
    env = {**os.environ, "WAREHOUSE_URL": server_url.url()}
    cmd = [sys.executable, "-m", "tierhouse.devtools.bench", "--scale", "small", "--customers", "80",
           "--results", str(results), "--doc", str(doc)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=settings.PROJECT_ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    run = json.loads(results.read_text())["runs"]["80"]
    assert set(run["steps"]) == STEPS
    for name, step in run["steps"].items():
        assert step["seconds"] > 0 and step["peak_rss_mb"] > 0, name
    assert set(run["steps"]["ingest"]["result"]["loaded"]) == {
        "pos",
        "crm",
        "payments",
        "custom_orders",
        "feedback",
        "imports",
        "shop",
    }
    assert run["steps"]["ingest"]["result"]["loaded"]["shop"]["rows_loaded"] > 0
    graded = run["steps"]["grade_full"]["result"]
    assert "error" not in graded, graded
    assert graded["policies"] == {"highend_flower": "published", "service_levels": "published", "abcd": "published"}
    assert set(run["ratios"]) == set(bench_report.RATIOS)
    assert {"loader", "psql_copy", "file_rows"} <= set(run["copy"]) and run["copy"]["file_rows"] > 0
    # a load, not a quarantine: only the generator's one planted bad payment is refused
    assert (run["copy"]["loaded_rows"], run["copy"]["quarantined_rows"]) == (run["copy"]["file_rows"] - 1, 1)
    assert set(run["dag_parse"]) == {path.name for path in (settings.PROJECT_ROOT / "dags").glob("*.py")}
    assert {"nproc", "ram_gib", "load_average"} <= set(run["machine"])

    agreement = run["p1_agreement"]
    assert agreement["graded"]["project"] > 20
    assert agreement["floor"]["agree"], agreement["floor"]
    assert agreement["reference"]["agree"], agreement["reference"]

    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark\n\nProse above the generated section stays.\n")
    assert bench_report.BEGIN in text and "| 80 |" in text
    assert (tmp_path / bench_report.CHART).read_text().startswith("<svg")
