"""docs/SOURCES.md says what the code does: its column tables equal the sources as
tierhouse.ingest.sources declares them, and every example file it points to loads through
`tierhouse import`, with nothing quarantined."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tierhouse import settings
from tierhouse.ingest.sources import SOURCES, CsvSource
from tierhouse.privacy import access, crypto
from tierhouse.warehouse.connection import WarehouseUrl

DOC = settings.PROJECT_ROOT / "docs" / "SOURCES.md"
TIERHOUSE = Path(sys.executable).with_name("tierhouse")


def sections() -> dict[str, str]:
    parts = re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.M)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def documented_columns(section: str) -> list[tuple[str, ...]]:
    """(column, Chinese headers, type, required, allowed values) of each row of the column table."""
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), cells[1], cells[2], cells[3], cells[4]))
    return rows


def declared_columns(source: CsvSource) -> list[tuple[str, ...]]:
    rows = []
    for column in source.columns:
        allowed = ", ".join(f"`{value}`" for value in sorted(column.allowed)) if column.allowed else ""
        if column.minimum is not None:
            allowed = f"≥ {column.minimum}"
        rows.append((column.name, " / ".join(column.headers), column.kind, "yes" if column.required else "no", allowed))
    return rows


@pytest.mark.parametrize("name", list(SOURCES))
def test_the_documented_layout_is_the_code_s(name: str) -> None:
    documented = sections()
    assert name in documented, f"docs/SOURCES.md has no section for {name}"
    assert documented_columns(documented[name]) == declared_columns(SOURCES[name])
    assert f"raw.{SOURCES[name].table}" in documented[name]


def test_every_source_and_reason_code_is_documented() -> None:
    assert set(sections()) >= {*SOURCES, "shop", "Rules every file source shares"}
    text = DOC.read_text(encoding="utf-8")
    from tierhouse.ingest.sources import REASON_CODES

    assert [code for code in REASON_CODES if f"`{code}`" not in text] == []


def examples() -> list[tuple[str, Path]]:
    found = []
    for name, section in sections().items():
        found += [(name, settings.PROJECT_ROOT / path) for path in re.findall(rf"`tierhouse import {name} (\S+)`", section)]
    return found


def test_every_example_file_is_documented_once() -> None:
    listed = sorted(path.name for _, path in examples())
    assert listed == sorted(path.name for path in (settings.PROJECT_ROOT / "docs" / "examples").glob("*.csv"))
    assert {name for name, _ in examples()} == set(SOURCES)


def test_every_example_loads_through_the_cli(scratch_db: WarehouseUrl, tmp_path: Path) -> None:
    access.apply(scratch_db)  # as `tierhouse warehouse migrate` leaves it
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERHOUSE_") and k != "WAREHOUSE_URL"}
    env.update(
        WAREHOUSE_URL=scratch_db.url(),
        TIERHOUSE_DATA_DIR=str(tmp_path / "landing"),
        TIERHOUSE_PSEUDONYM_KEY=os.environ[crypto.KEY_ENV],
        TIERHOUSE_PII_KEY=os.environ[crypto.PII_KEY_ENV],
    )
    for name, path in examples():
        result = subprocess.run(
            [str(TIERHOUSE), "import", name, str(path)], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, f"{name} {path.name}:\n{result.stdout}\n{result.stderr}"
        assert re.search(rf"^{name}: 1 of 1 files loaded .*, [1-9]\d* rows loaded, 0 quarantined$", result.stdout, re.M), (
            result.stdout
        )
        assert (tmp_path / "landing" / SOURCES[name].subdir / path.name).is_file()
