"""Data-subject requests (P1 Art. 14, policy 002): a customer may see everything held on them and
the basis of their grade, have errors corrected, withdraw consent, and have their personal data
erased where the law allows.

Every request is recorded in ``audit.dsr_requests``. Personal data is read only as ``steward``
through ``pii.read_customer``, which logs the read. A correction or a consent withdrawal is a new
CRM member version (``raw.crm_members`` with ``_source_file = 'dsr/<request id>'``): it takes
effect from the moment it is made, so the next grading uses it and past lists stay as graded.
Erasure blanks the encrypted personal data; the pseudonymous grading history stays intact.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from tierhouse.errors import TierhouseError
from tierhouse.periods import CHINA
from tierhouse.privacy.crypto import decrypt, encrypt, normalise_phone, pseudonymise
from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.migrate import require_migrated
from tierhouse.warehouse.rows import fetch_dicts, to_json

CORRECTABLE = {"customer_type", "name", "phone", "address"}
PERSONAL_FIELDS = ("name", "phone", "address")


class RequestError(TierhouseError, ValueError):
    """A request that cannot be carried out; the message says why."""


def _record(cur, kind: str, customer_key: str, requested_by: str, reason: str, details: dict) -> str:
    if not reason.strip() or not requested_by.strip():
        raise RequestError("a data-subject request needs who handles it and the customer's request (reason)")
    request_id = str(uuid.uuid4())
    cur.execute(
        "insert into audit.dsr_requests (request_id, kind, customer_key, requested_by, reason, details)"
        " values (%s, %s, %s, %s, %s, %s)",
        (request_id, kind, customer_key, requested_by.strip(), reason.strip(), to_json(details)),
    )
    return request_id


def read_personal_data(cur, member_id: str, requested_by: str, reason: str) -> list[dict]:
    """Decrypted personal data of one member, read as steward through the logged function."""
    # SET LOCAL: a failed read aborts the transaction, and the rollback ends the role with it
    cur.execute("set local role steward")
    cur.execute("select source, row_key, field, ciphertext from pii.read_customer(%s, %s, %s)", (member_id, requested_by, reason))
    rows = cur.fetchall()
    cur.execute("reset role")
    return [
        {"source": source, "record": row_key, "field": field, "value": decrypt(token, f"pii.{source}.{field}")}
        for source, row_key, field, token in rows
    ]


def customer_names(url: WarehouseUrl, requested_by: str, reason: str) -> list[str]:
    """Every customer's name, decrypted, read as steward (one access-log entry)."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute("set local role steward")
        cur.execute("select ciphertext from pii.customer_names(%s, %s)", (requested_by, reason))
        tokens = [row[0] for row in cur.fetchall()]
    names = (decrypt(token, "pii.crm_members.name") for token in tokens)
    return sorted({name for name in names if name})


def _latest_member_version(cur, member_id: str) -> dict:
    cur.execute(
        "select * from raw.crm_members where member_id = %s order by updated_at desc, _loaded_at desc limit 1", (member_id,)
    )
    rows = fetch_dicts(cur)
    if not rows:
        raise RequestError(f"no CRM member {member_id!r}")
    return rows[0]


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _plain_row(row: dict) -> dict:
    return {k: _plain(v) for k, v in row.items()}


def _rows(cur, sql: str, params: tuple) -> list[dict]:
    cur.execute(sql, params)
    return [_plain_row(row) for row in fetch_dicts(cur)]


def access(url: WarehouseUrl, member_id: str, requested_by: str, reason: str, out_dir: Path, grading_history: list[dict]) -> Path:
    """Everything held on one customer, with each grade and its basis, as a readable JSON file.

    ``grading_history`` is the customer's history as :func:`tierhouse.lifecycle.history.customer_history`
    reports it: the grade lifecycle sits above privacy, so the caller reads it."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        _latest_member_version(cur, member_id)
        request_id = _record(cur, "access", member_id, requested_by, reason, {"format": "json"})
        report = {
            "request_id": request_id,
            "customer": member_id,
            "prepared_at": datetime.now(UTC).isoformat(),
            "personal_data": read_personal_data(cur, member_id, requested_by, f"data-subject access request {request_id}"),
            "member_versions": _rows(
                cur,
                "select customer_type, grading_consent, grading_consent_at, marketing_consent, marketing_consent_at, updated_at"
                " from raw.crm_members where member_id = %s order by updated_at",
                (member_id,),
            ),
            "orders": _rows(
                cur,
                "select order_id, ordered_at, sales_channel, net_amount, identity_rule from intermediate.int_orders"
                " where customer_key = %s order by ordered_at",
                (member_id,),
            ),
            "grading_history": [_plain_row(event) for event in grading_history],
            "grading_basis": _rows(
                cur,
                "select b.policy, b.policy_version, b.period_month, b.item_kind, b.item, b.item_value, b.band, b.points,"
                " b.weight, b.tier, b.decided_by from marts.fct_grading_basis as b"
                " join published.customer_tiers as p using (policy, period_month, customer_key)"
                " where b.customer_key = %s order by b.period_month, b.policy, b.grading_basis_id",
                (member_id,),
            ),
            "requests": _rows(
                cur,
                "select request_id, kind, requested_by, reason, created_at from audit.dsr_requests"
                " where customer_key = %s order by created_at",
                (member_id,),
            ),
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"dsr_access_{member_id}_{request_id[:8]}.json"
    path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str))
    path.chmod(0o600)  # it holds personal data
    return path


def correct(
    url: WarehouseUrl,
    member_id: str,
    field: str,
    value: str,
    requested_by: str,
    reason: str,
    effective_at: datetime | None = None,
) -> str:
    """Correct one field from ``effective_at`` (now by default): a new member version that every
    grading of a period ending after it reads; lists already published are not rewritten."""
    if field not in CORRECTABLE:
        raise RequestError(f"{field!r} cannot be corrected here; one of {sorted(CORRECTABLE)}")
    if field == "customer_type" and value not in ("individual", "enterprise"):
        raise RequestError("customer_type is individual or enterprise")
    if field == "phone":
        try:
            value = normalise_phone(value)
        except ValueError:
            raise RequestError("not a mainland mobile number") from None
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        latest = _latest_member_version(cur, member_id)
        # personal values are never written to the audit tables, only that they changed
        details = {"field": field, **({"from": latest[field], "to": value} if field == "customer_type" else {})}
        request_id = _record(cur, "correction", member_id, requested_by, reason, details)
        changes = {field: value} if field == "customer_type" else {}
        if field == "phone":
            changes["phone_key"] = pseudonymise("phone", value)
        personal = {field: value} if field in PERSONAL_FIELDS else {}
        _new_member_version(cur, latest, request_id, changes, personal, effective_at)
        return request_id


def withdraw_consent(
    url: WarehouseUrl, member_id: str, requested_by: str, reason: str, effective_at: datetime | None = None
) -> str:
    """Art. 7: from ``effective_at`` (now) the customer is not graded; published lists stay."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        latest = _latest_member_version(cur, member_id)
        request_id = _record(cur, "consent_withdrawal", member_id, requested_by, reason, {"grading_consent": False})
        _new_member_version(cur, latest, request_id, {"grading_consent": False}, {}, effective_at)
        return request_id


def _new_member_version(
    cur, latest: dict, request_id: str, changes: dict, personal_changes: dict, effective_at: datetime | None
) -> None:
    # CRM versions carry the local (mainland-China) time without a zone, as the CRM exports them
    now = effective_at or datetime.now(CHINA)
    if now.tzinfo is not None:
        now = now.astimezone(CHINA).replace(tzinfo=None)
    if now <= latest["updated_at"]:
        raise RequestError(f"a change must take effect after the member's latest version ({latest['updated_at']})")
    version = {**latest, **changes, "updated_at": now, "_source_file": f"dsr/{request_id}", "_source_line": 1}
    if "grading_consent" in changes:
        version["grading_consent_at"] = now
    version.pop("_loaded_at", None)
    columns = list(version)
    cur.execute(
        f"insert into raw.crm_members ({', '.join(columns)}) values ({', '.join(['%s'] * len(columns))})",
        [version[c] for c in columns],
    )
    cur.execute(
        "select name, phone, address from pii.crm_members where member_id = %s order by updated_at desc limit 1",
        (latest["member_id"],),
    )
    personal = dict(zip(PERSONAL_FIELDS, cur.fetchone() or (None, None, None), strict=True))
    personal.update({k: encrypt(v, f"pii.crm_members.{k}") for k, v in personal_changes.items()})
    cur.execute(
        "insert into pii.crm_members (member_id, updated_at, name, phone, address, _source_file, _source_line)"
        " values (%s, %s, %s, %s, %s, %s, 1)",
        (latest["member_id"], now, personal["name"], personal["phone"], personal["address"], f"dsr/{request_id}"),
    )


def erase(url: WarehouseUrl, member_id: str, requested_by: str, reason: str) -> str:
    """Erase the customer's personal data (names, phone numbers, addresses, staff notes). The
    pseudonymous history (grades, orders by key, reviews, appeals) stays: it identifies no one
    without the personal data, and auditors need it."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        _latest_member_version(cur, member_id)
        cur.execute("update pii.crm_members set name = null, phone = null, address = null where member_id = %s", (member_id,))
        members = cur.rowcount
        cur.execute(
            "update pii.service_tickets set note = null"
            " where ticket_id in (select ticket_id from raw.service_tickets where member_id = %s)",
            (member_id,),
        )
        notes = cur.rowcount
        return _record(cur, "erasure", member_id, requested_by, reason, {"member_versions": members, "ticket_notes": notes})
