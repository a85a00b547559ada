"""Who may read what on the graded warehouse, as the real logins; personal
data encrypted at rest and read only through the logged steward path; keys nowhere they should
not be; keyed hashes that a dictionary of plain hashes cannot reverse."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess

import psycopg2
import pytest

from tests.support import GradedWarehouse, query
from tierhouse import settings
from tierhouse.privacy import access, crypto, dsr
from tierhouse.warehouse.connection import connect, login_url

pytestmark = pytest.mark.e2e

# Each role's rights, cell by cell and as the real logins, are the privilege matrix of
# docs/PRIVACY.md, run by tests/test_least_privilege.py; here, on the graded warehouse the DAGs built.


@pytest.fixture(scope="module")
def governed(graded_warehouse: GradedWarehouse) -> GradedWarehouse:
    access.apply(graded_warehouse.url)  # idempotent: the DAGs applied it already
    return graded_warehouse


def test_published_views_run_with_the_readers_rights(governed: GradedWarehouse) -> None:
    views = query(
        governed.url,
        "select c.relname, coalesce('security_invoker=true' = any(c.reloptions), false) from pg_class as c"
        " join pg_namespace as n on n.oid = c.relnamespace where n.nspname = 'published' and c.relkind = 'v'",
    )
    assert views and all(invoker for _, invoker in views), views
    # a view over personal data placed among the published views (only the migrate login can)
    # shows the BI login nothing, even when granted to bi_reader
    with connect(governed.url) as conn, conn.cursor() as cur:
        cur.execute("create view published.leak with (security_invoker = true) as select name from pii.crm_members")
        cur.execute("grant select on published.leak to bi_reader")
    try:
        bi = psycopg2.connect(login_url(governed.url, "bi").dsn())
        try:
            with bi.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("select * from published.leak")
        finally:
            bi.rollback()
            bi.close()
    finally:
        query(governed.url, "drop view published.leak")


def test_personal_data_is_encrypted_at_rest_and_read_only_through_the_logged_path(governed: GradedWarehouse) -> None:
    url = governed.url
    for table, columns in (("crm_members", ("name", "phone", "address")), ("service_tickets", ("note",))):
        for column in columns:
            ((plain, total),) = query(
                url, f"select count(*) filter (where {column} !~ '^enc:v[0-9]+:'), count({column}) from pii.{table}"
            )
            assert total > 0 and plain == 0, (table, column)
    ((member,),) = query(url, "select min(member_id) from pii.crm_members where name is not null")
    ((logged_before,),) = query(url, "select count(*) from audit.access_log")
    steward = login_url(url, "steward")
    personal = dsr.read_personal_data(steward, member, "dsr_verification")
    assert {row["field"] for row in personal} >= {"name", "phone", "address"}
    phones = [row["value"] for row in personal if row["field"] == "phone" and row["value"]]
    assert phones and all(crypto.normalise_phone(p) == p for p in phones)
    assert query(
        url,
        "select database_user, customer_key, reason_code, database_role from audit.access_log order by access_id desc limit 1",
    ) == [("th_steward", member, "dsr_verification", "th_steward")]  # the login itself, no free text
    ((logged_after,),) = query(url, "select count(*) from audit.access_log")
    assert logged_after == logged_before + 1
    with pytest.raises(psycopg2.errors.RaiseException, match="known reason code"):
        dsr.read_personal_data(steward, member, " ")
    with pytest.raises(psycopg2.errors.RaiseException, match="append-only"):
        query(url, "delete from audit.access_log")
    # a ciphertext moved to another column, or read with another key, does not decrypt
    ((token,),) = query(url, "select name from pii.crm_members where member_id = %s and name is not null limit 1", (member,))
    with pytest.raises(crypto.DecryptionError):
        crypto.decrypt(token, "pii.crm_members.address")


def _every_text_value_containing(url, needle: str) -> list[str]:
    columns = query(
        url,
        "select table_schema, table_name, column_name from information_schema.columns"
        " where table_schema not in ('pg_catalog', 'information_schema') and data_type in ('text', 'character varying', 'jsonb', 'json')",
    )
    hits = []
    for schema, table, column in columns:
        ((count,),) = query(url, f'select count(*) from "{schema}"."{table}" where "{column}"::text like %s', (f"%{needle}%",))
        if count:
            hits.append(f"{schema}.{table}.{column}")
    return hits


def test_the_keys_are_never_in_the_database_the_repository_or_the_logs(governed: GradedWarehouse) -> None:
    for env in (crypto.KEY_ENV, crypto.PII_KEY_ENV):
        key = os.environ[env]
        assert _every_text_value_containing(governed.url, key) == [], env
        assert key not in governed.ingest_run.output and key not in governed.grading_run.output, env
        tracked = subprocess.run(
            ["git", "grep", "-l", "-F", key], cwd=settings.PROJECT_ROOT, capture_output=True, text=True, check=False
        )
        assert tracked.stdout == "", env
    # the local key file of the embedded warehouse is never committed
    ignored = subprocess.run(["git", "check-ignore", "-q", ".warehouse/secrets.json"], cwd=settings.PROJECT_ROOT, check=False)
    assert ignored.returncode == 0


def test_a_dictionary_of_plain_hashes_of_phone_numbers_finds_no_stored_key(governed: GradedWarehouse) -> None:
    url = governed.url
    stored = {
        key.split(":", 1)[1]
        for (key,) in query(url, "select distinct phone_key from raw.crm_members where phone_key is not null")
    }
    stored |= {
        key.split(":", 1)[1]
        for (key,) in query(url, "select distinct phone_key from raw.pos_sales_lines where phone_key is not null")
    }
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("select distinct phone from pii.crm_members where phone is not null")
        real = [crypto.decrypt(token, "pii.crm_members.phone") for (token,) in cur.fetchall()]
    assert len(stored) > 100 and real
    # the attacker's dictionary: every real number plus 300k other plausible mobiles, in the
    # spellings a careless implementation might hash
    rng = random.Random(7)
    candidates = set(real) | {f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}" for _ in range(300_000)}
    spellings = ("{}", "+86{}", "phone:{}")
    hashers = (hashlib.md5, hashlib.sha1, hashlib.sha256)
    found = 0
    for number in candidates:
        for spelling in spellings:
            text = spelling.format(number).encode()
            for hasher in hashers:
                digest = hasher(text).hexdigest()
                if digest[:32] in stored or digest in stored:
                    found += 1
    assert found == 0
    # ...while the keyed hash with the secret does give the stored keys, so the test can fail
    assert {crypto.pseudonymise("phone", number).split(":", 1)[1] for number in real} <= stored


def test_each_loaded_file_is_written_by_the_ingest_login(governed: GradedWarehouse) -> None:
    # the ingest DAG of the fixture loaded every file with this login; a grant missing would have failed it
    conn = psycopg2.connect(login_url(governed.url, "ingest").dsn())
    try:
        with conn.cursor() as cur:
            cur.execute("select session_user, pg_has_role(session_user, 'loader', 'member')")
            assert cur.fetchone() == ("th_ingest", True)
            cur.execute("select count(*) from raw.load_manifest")
            assert cur.fetchone()[0] > 0
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("select count(*) from marts.fct_customer_tiers")
    finally:
        conn.rollback()
        conn.close()
