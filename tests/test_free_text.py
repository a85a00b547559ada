"""Staff free text is checked at entry with the gate's own detectors; the detectors find what
people type (tel13912345678, ID11010519491231002X, 139.1234.5678, ...) and not the keys, hashes,
ids, amounts and dates the warehouse holds; the gate connects as its own SELECT-only login,
refuses views that would run someone else's functions and runs before every publish path;
quarantine details never quote personal values. Each attack runs as the real login of the job
that would carry it out (th_review, th_steward, th_dbt, th_gate, th_publish), never as a superuser."""

from __future__ import annotations

import random
import re
import secrets
import uuid
from datetime import date
from pathlib import Path

import pytest

from tests.support import as_login, query
from tests.test_cli import assert_one_line_error, tierhouse
from tierhouse.gates import QualityGateFailed
from tierhouse.ingest import parsing
from tierhouse.ingest.sources import ORDER_IMPORT
from tierhouse.lifecycle import appeals, regrade, restatements, review
from tierhouse.orchestration import pipeline
from tierhouse.privacy import access, crypto, deidentification, free_text
from tierhouse.privacy.free_text import FreeTextRefused
from tierhouse.warehouse import migrate
from tierhouse.warehouse.connection import WarehouseUrl, connect, login_url

PERIOD = date(2026, 9, 1)


@pytest.fixture
def granted(scratch_db: WarehouseUrl) -> WarehouseUrl:
    """A migrated warehouse with every job's grants, as `tierhouse warehouse migrate` leaves it."""
    access.apply(scratch_db)
    return scratch_db


#: (text, kinds found): the issue's spellings, their full-width forms, and the ones found before.
SPELLINGS = [
    ("tel13912345678", ["mobile"]),
    ("13912345678x", ["mobile"]),
    ("ID11010519491231002X", ["resident_id"]),
    ("139.1234.5678", ["mobile"]),
    ("(139)1234-5678", ["mobile"]),
    ("139/1234/5678", ["mobile"]),
    ("ｔｅｌ１３９１２３４５６７８", ["mobile"]),
    ("１３９１２３４５６７８ｘ", ["mobile"]),
    ("ＩＤ１１０１０５１９４９１２３１００２Ｘ", ["resident_id"]),
    ("１３９．１２３４．５６７８", ["mobile"]),
    ("（１３９）１２３４－５６７８", ["mobile"]),
    ("１３９／１２３４／５６７８", ["mobile"]),
    ("电话：13912345678", ["mobile"]),
    ("mobile:139-1234-5678 ext", ["mobile"]),
    ("13812345678", ["mobile"]),
    ("手机:138-1234-5678", ["mobile"]),
    ("+86 138 1234 5678", ["mobile"]),
    ("0086-13812345678", ["mobile"]),
    ("请回电１３８１２３４５６７８", ["mobile"]),
    ("身份证 110105-19491231-002X", ["resident_id"]),
    ("客户邮箱 wang.fang@example.com", ["email"]),
    ("ｗａｎｇ＠ｅｘａｍｐｌｅ．ｃｏｍ", ["email"]),
    ("tel13912345678 ID11010519491231002X", ["mobile", "resident_id"]),
]

#: What the warehouse holds that only looks like a number: found by neither engine.
NOT_PERSONAL = [
    "M13812345678",  # a key's one-letter prefix
    "M000001",
    "v1:13812345678abcdef0123456789abcd",
    "abcdef13912345678",
    "13812345678abcdef",
    "SH01-00012345",
    "A-10001",
    "WED-B001",
    "0.13812345678",
    "13812345678.50",
    "1391234.5678",
    "139.12345678",
    "1381234567",
    "12812345678",
    "110105194912310021",  # wrong check character
    "2026-10-01 13:45:12",
    "2026/10/01",
    "manual__2026-10-01T13:45:12.123456+00:00",
    "art9 rising_trend: potential -> high",
]


def sql_kinds(url, texts: list[str]) -> list[list[str]]:
    """The SQL detectors' findings, run as the gate's own login, as the gate runs them."""
    rows = query(
        login_url(url, "gate"),
        "select audit.has_mobile(v), audit.has_resident_id(v), audit.has_email(v)"
        " from unnest(%s::text[]) with ordinality as t (raw, n), audit.fold_width(raw) as v order by n",
        (texts,),
    )
    return [[kind for kind, hit in zip(("mobile", "resident_id", "email"), row, strict=True) if hit] for row in rows]


def test_the_python_patterns_are_the_migrations_strings() -> None:
    detectors = {m.name: m.sql for m in migrate.migrations()}
    widened = detectors["free_text_detectors"]
    assert f"value ~ '{free_text.MOBILE_PATTERN}'" in widened
    assert f"regexp_matches(value, '{free_text.RESIDENT_ID_PATTERN}', 'g')" in widened
    assert f"value ~ '{free_text.EMAIL_PATTERN}'" in detectors["deidentification_detectors"]


def test_every_spelling_is_found_alike_by_the_gate_and_at_entry(granted) -> None:
    texts = [text for text, _ in SPELLINGS]
    expected = [kinds for _, kinds in SPELLINGS]
    assert [free_text.kinds_found(text) for text in texts] == expected
    assert sql_kinds(granted, texts) == expected


def test_keys_hashes_uuids_amounts_dates_and_order_ids_are_found_by_neither(granted) -> None:
    rng = random.Random(13)
    texts = [
        *NOT_PERSONAL,
        *(f"v1:{secrets.token_hex(16)}" for _ in range(2000)),
        *(str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(500)),
        *(f"{rng.randrange(10**9)}.{rng.randrange(100):02d}" for _ in range(500)),
        *(f"{rng.choice(['SH01', 'BJ01', 'W'])}-{rng.randrange(10**8):08d}" for _ in range(500)),
    ]
    assert [t for t in texts if free_text.kinds_found(t)] == []
    assert [t for t, kinds in zip(texts, sql_kinds(granted, texts), strict=True) if kinds] == []


def test_a_refusal_names_the_field_and_the_kind_never_the_value() -> None:
    with pytest.raises(FreeTextRefused) as raised:
        free_text.check_free_text("reason", "customer asked to call (139)1234-5678")
    message = str(raised.value)
    assert message.startswith("reason refused: it holds personal data (mobile number)")
    assert "1234" not in message and "\n" not in message
    with pytest.raises(FreeTextRefused, match=r"^basis refused: it holds personal data \(customer name\)"):
        free_text.check_free_text("basis", "王小明 disputes the grade", ("王小明",))
    free_text.check_free_text("reason", "strong wedding pipeline, confirmed by phone")


# -- entry: nothing is written ------------------------------------------------------------------
WRITTEN = (
    "select (select count(*) from history.reviews) + (select count(*) from history.appeals)"
    " + (select count(*) from history.appeal_answers) + (select count(*) from audit.dsr_requests)"
    " + (select count(*) from audit.access_log) + (select count(*) from history.restatement_decisions)"
    " + (select count(*) from history.approvals)"
)


def dsr_request(url, kind: str, requested_by: str, reason: str, field: str | None = None, value: str | None = None) -> str:
    return pipeline.data_subject_request(
        kind, "M1", requested_by, reason, field, value, "/nonexistent", url=login_url(url, "steward")
    )


def as_reviewer(url):
    return login_url(url, "review")


#: a well-formed candidate id no list has: the text is refused before the candidate is looked up
NO_CANDIDATE = "00000000-0000-4000-8000-000000000000"

ENTRIES = {
    "review reason": lambda url: review.add_review(as_reviewer(url), "highend_flower", PERIOD, "M1", "top", "Li Wei", "tel13912345678"),
    "reviewer": lambda url: review.add_review(as_reviewer(url), "highend_flower", PERIOD, "M1", "top", "wang@example.com", "ok"),
    "appeal request": lambda url: appeals.file_appeal(as_reviewer(url), "highend_flower", PERIOD, "M1", "ID11010519491231002X", "Desk"),
    "appeal recorded by": lambda url: appeals.file_appeal(as_reviewer(url), "highend_flower", PERIOD, "M1", "asks", "139.1234.5678"),
    "appeal channel": lambda url: appeals.file_appeal(as_reviewer(url), "highend_flower", PERIOD, "M1", "asks", "Desk", "tel13912345678"),
    "appeal basis": lambda url: appeals.answer_appeal(as_reviewer(url), "no-such-appeal", "Zhao Lei", "(139)1234-5678", "top"),
    "appeal answered by": lambda url: appeals.answer_appeal(as_reviewer(url), "no-such-appeal", "139/1234/5678", "basis"),
    "dsr reason": lambda url: dsr_request(url, "erasure", "Chen Jing", "customer wrote from wang@example.com"),
    "dsr requested by": lambda url: dsr_request(url, "consent_withdrawal", "13912345678x", "no more grading"),
    "dsr access reason": lambda url: dsr_request(url, "access", "Chen Jing", "call back on 13912345678"),
    "dsr correction reason": lambda url: dsr_request(url, "correction", "Chen Jing", "ID 11010519491231002X", "name", "王小明"),
    "restatement reason": lambda url: restatements.decide(as_reviewer(url), NO_CANDIDATE, "rejected", "Li Wei", "tel13912345678"),
    "restatement decided by": lambda url: restatements.decide(as_reviewer(url), NO_CANDIDATE, "accepted", "a@b.cn", "late order"),
    "approval comment": lambda url: review.approve(as_reviewer(url), "service_levels", PERIOD, "Zhou Min", "tel13912345678"),
    "approver": lambda url: review.approve(as_reviewer(url), "service_levels", PERIOD, "zhou@example.com", "approved"),
}  # fmt: skip


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_free_text_holding_personal_data_is_refused_and_nothing_is_written(granted, entry: str) -> None:
    with pytest.raises(
        FreeTextRefused, match=r"refused: it holds personal data \((mobile number|resident ID number|e-mail address)\)"
    ):
        ENTRIES[entry](granted)
    assert query(granted, WRITTEN) == [(0,)]


def test_a_customer_name_in_free_text_is_refused_at_entry(granted) -> None:
    query(
        granted,
        "insert into pii.crm_members (member_id, updated_at, name, _source_file, _source_line)"
        " values ('M1', '2026-01-01', %s, 'crm.csv', 2)",
        (crypto.encrypt("王小明", "pii.crm_members.name"),),
    )
    with pytest.raises(FreeTextRefused, match=r"^request refused: it holds personal data \(customer name\)"):
        appeals.file_appeal(as_reviewer(granted), "highend_flower", PERIOD, "M1", "王小明说等级不对", "Desk")
    # the names were read once, by the steward's own login through its logged path; nothing else was written
    assert query(granted, "select database_user, reason_code from audit.access_log") == [("th_steward", "free_text_check")]
    assert query(granted, "select count(*) from history.appeals") == [(0,)]


CLI_ENTRIES = [
    (["review", "add", "--period", "2026-09", "--customer", "M1", "--tier", "top", "--reviewer", "Li Wei", "--reason",
      "tel13912345678"], "reason", "mobile number"),
    (["review", "add", "--period", "2026-09", "--customer", "M1", "--tier", "top", "--reviewer", "ID11010519491231002X",
      "--reason", "ok"], "reviewer", "resident ID number"),
    (["appeal", "file", "--period", "2026-09", "--customer", "M1", "--request", "139.1234.5678", "--recorded-by", "Desk"],
     "request", "mobile number"),
    (["appeal", "file", "--period", "2026-09", "--customer", "M1", "--request", "asks", "--recorded-by", "a@b.cn"],
     "recorded by", "e-mail address"),
    (["appeal", "file", "--period", "2026-09", "--customer", "M1", "--request", "asks", "--recorded-by", "Desk",
      "--channel", "(139)1234-5678"], "channel", "mobile number"),
    (["appeal", "answer", "--appeal-id", "x", "--answered-by", "Zhao Lei", "--basis", "139/1234/5678", "--tier", "top"],
     "basis", "mobile number"),
    (["appeal", "answer", "--appeal-id", "x", "--answered-by", "13912345678x", "--basis", "ok"], "answered by", "mobile number"),
    (["dsr", "access", "--customer", "M1", "--requested-by", "Chen Jing", "--reason", "ＩＤ１１０１０５１９４９１２３１００２Ｘ"],
     "reason", "resident ID number"),
    (["dsr", "correction", "--customer", "M1", "--requested-by", "Chen Jing", "--reason", "mail a@b.cn", "--field", "name",
      "--value", "王小明"], "reason", "e-mail address"),
    (["dsr", "consent_withdrawal", "--customer", "M1", "--requested-by", "tel13912345678", "--reason", "stop"],
     "requested by", "mobile number"),
    (["dsr", "erasure", "--customer", "M1", "--requested-by", "Chen Jing", "--reason", "call １３９１２３４５６７８"],
     "reason", "mobile number"),
    (["restatements", "reject", "--candidate", NO_CANDIDATE, "--decided-by", "Li Wei", "--reason", "139 1234 5678 called"],
     "reason", "mobile number"),
    (["restatements", "accept", "--candidate", NO_CANDIDATE, "--decided-by", "ID11010519491231002X", "--reason", "late"],
     "decided by", "resident ID number"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "field", "kind"), CLI_ENTRIES, ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else None)
def test_every_cli_command_taking_text_refuses_personal_data_in_one_line(granted, args, field, kind) -> None:
    # the CLI connects as th_review (review, appeal) or th_steward (dsr), as a person's command does
    result = tierhouse(*args, warehouse=granted)
    assert_one_line_error(
        result,
        f"{field} refused: it holds personal data ({kind}), which stays in the pii schema; write it without (nothing was recorded)",
    )
    assert not re.search(r"1234|0519|a@b|王小明", result.stderr)
    assert query(granted, WRITTEN) == [(0,)]


# -- the gate: its own SELECT-only login, no one else's functions, before every publish ----------
def test_the_gate_refuses_views_that_would_run_someone_elses_function(granted, tmp_path: Path) -> None:
    stolen = tmp_path / "stolen.csv"
    # a function that copies personal data out and reads the server's files, called by an
    # innocent-looking view in raw. No job's login may create a function any more (migration
    # 0100's event trigger), so it is planted as one made before that, by the admin login.
    query(
        granted,
        f"""
        create function raw.lookup(text) returns text language plpgsql as $$
        begin
            copy (select member_id from pii.crm_members) to '{stolen}';
            perform pg_read_file('postmaster.pid');
            return $1;
        end $$;
        create view raw.member_labels as select raw.lookup(member_id) as label from raw.crm_members;
        grant select on raw.member_labels to gate;
        """,
    )
    # dbt's own login may still create views: one reading the server's files, one calling the function
    with as_login(granted, "dbt") as conn, conn.cursor() as cur:
        cur.execute("set role transformer")
        cur.execute("create view staging.server_files as select pg_read_file('postmaster.pid') as content")
        cur.execute(
            "create materialized view staging.member_counts as"
            " select count(*) as n, raw.lookup('x') as l from raw.crm_members with no data"
        )
        conn.commit()
    gate = login_url(granted, "gate")
    outcome = deidentification.scan(gate, ["王小明"], exemptions=())
    refused = {f.kwargs["column"]: str(f.observed) for f in outcome.failures}
    assert not outcome.success
    assert set(refused) == {"raw.member_labels", "staging.server_files", "staging.member_counts"}
    assert "raw.lookup" in refused["raw.member_labels"] and "pg_catalog.pg_read_file" in refused["staging.server_files"]
    assert not stolen.exists()
    with pytest.raises(deidentification.QualityGateFailed, match=r"raw.member_labels: not scanned \(error: it calls raw.lookup"):
        deidentification.gate(gate, ["王小明"])
    assert not stolen.exists()


def test_the_gate_logs_in_as_its_own_select_only_login(granted) -> None:
    gate = login_url(granted, "gate")
    assert gate.user == "th_gate"
    assert deidentification.scan(gate, ["王小明"], exemptions=()).success
    # the gate role holds SELECT on relations, USAGE on schemas and nothing else: no write, no
    # CREATE, no function granted to it, no other role, no server-file reads
    [(relation_privileges, schema_privileges, functions, memberships)] = query(
        granted,
        """
        select
            array(select distinct a.privilege_type from pg_class as c, aclexplode(c.relacl) as a
                  where a.grantee = 'gate'::regrole order by 1),
            array(select distinct a.privilege_type from pg_namespace as n, aclexplode(n.nspacl) as a
                  where a.grantee = 'gate'::regrole order by 1),
            array(select p.oid::regprocedure::text from pg_proc as p, aclexplode(p.proacl) as a
                  where a.grantee = 'gate'::regrole),
            array(select g.rolname::text from pg_auth_members as m join pg_roles as g on g.oid = m.roleid
                  where m.member = 'gate'::regrole)
        """,
    )
    assert (relation_privileges, schema_privileges, functions, memberships) == (["SELECT"], ["USAGE"], [], [])
    # the gate's login is a member of gate only, and what gate may not read, the gate cannot scan
    # (the login's own rights are all it has; no other role to switch to)
    with as_login(granted, "gate") as conn, conn.cursor() as cur:
        cur.execute("select pg_has_role('th_gate', 'pg_read_server_files', 'USAGE'), pg_has_role('th_gate', 'loader', 'USAGE')")
        assert cur.fetchone() == (False, False)
    query(granted, "revoke select on raw.crm_members from gate")
    outcome = deidentification.scan(gate, ["王小明"], exemptions=())
    assert [(f.kwargs["column"], "permission denied" in str(f.observed)) for f in outcome.failures] == [("raw.crm_members", True)]


def test_every_publish_path_runs_the_gate_as_its_own_login_first(granted) -> None:
    """A leak planted outside pii stops the quarterly re-grade, a corrected appeal answer and an
    accepted restatement (each run as its job's login) before they write; review confirmation runs the same gate
    (tests/test_end_to_end.py plants a leak before each on a graded warehouse)."""
    publish, reviewer = login_url(granted, "publish"), login_url(granted, "review")
    paths = {
        "re-grade": lambda: regrade.regrade_quarter(publish, "highend_flower", PERIOD, "leak-run"),
        "appeal answer": lambda: appeals.answer_appeal(reviewer, "no-such-appeal", "Zhao Lei", "matched the order", "top"),
        "restatement": lambda: restatements.decide(reviewer, NO_CANDIDATE, "accepted", "Li Wei", "late orders checked"),
    }
    query(granted, "create table raw.planted_note as select '客户说请打tel13912345678'::text as note")
    # made after the grants: the gate's login may not read it, which fails the gate; a publisher's
    # or the admin's rights would have read it, so the gate ran as th_gate
    for publish_step in paths.values():
        with pytest.raises(
            QualityGateFailed, match=r"raw.planted_note: not scanned \(error: .*permission denied for table planted_note"
        ):
            publish_step()
    access.apply(granted)
    for name, publish_step in paths.items():
        with pytest.raises(QualityGateFailed) as raised:
            publish_step()
        message = str(raised.value)
        assert "raw.planted_note.note: mobile number in 1 row" in message and "13912345678" not in message, name
    assert query(granted, "select count(*) from history.grading_runs") == [(0,)]
    # the names the gate looks for were read by the steward's own login, each time
    assert query(granted, "select distinct database_user from audit.access_log") == [("th_steward",)]


# -- quarantine and the import layout -----------------------------------------------------------
HEADER = "order_id,line_no,ordered_at,channel,store_code,member_id,phone,sku,business_line,customization_level,quantity,amount"


def import_line(member_id: str = "VIP0001", phone: str = "", sku: str = "WED-B001", line_no: str = "1") -> str:
    return f"A-1,{line_no},2026-09-03 14:20:00,store,SH01,{member_id},{phone},{sku},wedding,bespoke,1,18800.00"


@pytest.mark.parametrize(
    ("line", "detail"),
    [
        (import_line(phone="139-1234-567"), "phone: not a mainland mobile number"),
        (import_line(member_id="13912345678"), "member_id: holds personal data (mobile number), not a code"),
        (import_line(member_id="tel 139.1234.5678"), "member_id: holds personal data (mobile number), not a code"),
        (import_line(sku="wang@example.com"), "sku: holds personal data (e-mail address), not a code"),
        (import_line(sku="ID11010519491231002X"), "sku: holds personal data (resident ID number), not a code"),
    ],
)
def test_import_rows_with_personal_data_in_codes_are_quarantined_without_the_value(line: str, detail: str) -> None:
    load = parsing.parse_export(ORDER_IMPORT, "orders.csv", f"{HEADER}\n{import_line(line_no='2')}\n{line}\n".encode())
    assert len(load.good_rows) == 1
    [rejection] = load.rejections
    assert (rejection.reason_code, rejection.detail) == ("invalid_value", detail)


def test_lists_published_before_the_reason_codes_are_given_them(scratch_db) -> None:
    columns = "policy, policy_version, period_month, customer_key, tier, tier_rank, decided_by"
    query(
        scratch_db,
        f"insert into published.customer_tiers ({columns}) values"
        " ('p', 1, '2026-09-01', 'M1', 'top', 1, 'review by Li Wei: customer Wang Fang called'),"
        " ('p', 1, '2026-09-01', 'M2', 'high', 2, 'appeal answered by Zhao Lei: order matched by phone'),"
        " ('p', 1, '2026-09-01', 'M3', 'high', 2, 'high: all conditions met')",
    )
    with connect(scratch_db) as conn, conn.cursor() as cur:  # without parameters: the SQL has LIKE's %
        cur.execute(next(m.sql for m in migrate.migrations() if m.name == "published_reason_codes"))
    assert query(scratch_db, "select customer_key, decided_by from published.customer_tiers order by 1") == [
        ("M1", "art8_review"),
        ("M2", "art9_appeal"),
        ("M3", "high: all conditions met"),
    ]
