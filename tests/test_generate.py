"""The synthetic data generator is deterministic and realistic enough to exercise the loaders."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from tierhouse.devtools.generate import STORES, SampleDataError, generate
from tierhouse.ingest import loaders, parsing
from tierhouse.ingest.sources import POS, SOURCES

END = date(2026, 11, 1)


def digest(root: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            sha.update(path.relative_to(root).as_posix().encode())
            sha.update(path.read_bytes())
    return sha.hexdigest()


def parse_everything(root: Path) -> tuple[Counter, Counter]:
    loaded, rejected = Counter(), Counter()
    for source in SOURCES.values():
        for path in sorted((root / source.subdir).rglob("*.csv")):
            load = parsing.parse_export(source, path.name, path.read_bytes(), known_stores=loaders.known_store_codes())
            load.reconcile()
            loaded[source.name] += len(load.good_rows)
            rejected.update(f"{source.name}:{r.reason_code}" for r in load.rejections)
    return loaded, rejected


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", 60, 6, seed=3, end=END)
    generate(tmp_path / "b", 60, 6, seed=3, end=END)
    generate(tmp_path / "c", 60, 6, seed=4, end=END)
    assert digest(tmp_path / "a") == digest(tmp_path / "b") != digest(tmp_path / "c")


def test_clean_data_parses_without_a_single_rejection(tmp_path: Path) -> None:
    counts = generate(tmp_path, 150, 12, seed=5, end=END, plant_bad_rows=False)
    loaded, rejected = parse_everything(tmp_path)
    assert rejected == Counter()
    assert loaded["pos"] == counts.pos_lines
    assert (loaded["crm"], loaded["payments"], loaded["custom_orders"], loaded["feedback"]) == (
        counts.crm_rows,
        counts.payments,
        counts.custom_orders,
        counts.tickets,
    )
    assert all(loaded[name] > 0 for name in SOURCES if name != "imports")  # imports are the user's own files


def test_planted_bad_rows_are_exactly_what_the_parser_rejects(tmp_path: Path) -> None:
    counts = generate(tmp_path, 150, 12, seed=5, end=END)
    _, rejected = parse_everything(tmp_path)
    per_source = Counter()
    for key, n in rejected.items():
        per_source[key.split(":")[0]] += n
    # the re-exported line is a duplicate only of an earlier file, which the loader (not the parser) sees
    assert per_source == Counter({**counts.planted_bad_rows, "pos": counts.planted_bad_rows["pos"] - 1})
    assert {
        "pos:missing_required_field",
        "pos:unparsable_amount",
        "pos:future_date",
        "pos:negative_quantity",
        "pos:unparsable_date",
        "pos:invalid_value",
        "pos:duplicate_line",
        "pos:unknown_store",
        "crm:unparsable_date",
        "crm:invalid_value",
        "payments:unparsable_amount",
        "custom_orders:invalid_value",
        "feedback:invalid_value",
    } == set(rejected)


def test_tills_differ_in_encoding_and_write_crlf(tmp_path: Path) -> None:
    generate(tmp_path, 150, 6, seed=5, end=END)
    encodings = {}
    for store in STORES:
        raw = sorted((tmp_path / "pos" / store.code).glob("*.csv"))[0].read_bytes()
        assert b"\r\n" in raw
        encodings[store.code] = parsing.detect_encoding(raw)
    assert set(encodings.values()) == {"utf-8", "utf-8-sig", "gb18030"}


def test_some_store_sales_identify_the_customer_by_phone_only(tmp_path: Path) -> None:
    generate(tmp_path, 200, 12, seed=5, end=END, plant_bad_rows=False)
    member, phone = POS.columns.index(POS.column("member_id")), POS.columns.index(POS.column("phone"))
    by_phone = anonymous = 0
    for path in (tmp_path / "pos").rglob("*.csv"):
        for row in parsing.parse_export(POS, path.name, path.read_bytes()).good_rows:
            by_phone += row[member] is None and row[phone] is not None
            anonymous += row[member] is None and row[phone] is None
    assert by_phone > 0 and anonymous > 0


@pytest.mark.parametrize("months", [1, 2])
@pytest.mark.parametrize("customers", [1, 2, 3, 4, 5])
def test_tiny_data_sets_generate_or_are_refused_with_a_message(tmp_path: Path, customers: int, months: int) -> None:
    """`tierhouse generate --customers 5 --months 2` once crashed planting bad rows it had no good row to copy."""
    if customers < 2 or months < 2:
        with pytest.raises(SampleDataError, match="at least 2"):
            generate(tmp_path, customers, months, seed=7, end=END)
        return
    counts = generate(tmp_path, customers, months, seed=7, end=END)
    _, rejected = parse_everything(tmp_path)
    per_source = Counter()
    for key, n in rejected.items():
        per_source[key.split(":")[0]] += n
    # a re-exported line (when planted) is a duplicate only of an earlier file, which the loader sees
    re_exported = 1 if counts.planted_bad_rows.get("pos", 0) == 9 else 0  # 7 in-file lines + unknown till + re-export
    assert per_source == Counter({**counts.planted_bad_rows, "pos": counts.planted_bad_rows.get("pos", 0) - re_exported})
