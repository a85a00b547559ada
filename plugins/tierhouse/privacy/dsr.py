"""Data-subject requests (P1 Art. 14, policy 002): a customer may see everything held on them and
the basis of their grade, have errors corrected, withdraw consent, and have their personal data
erased where the law allows.

A request is recorded first (:func:`record`: ``audit.dsr_requests``, a correction's value
encrypted in ``audit.dsr_request_values``) and then carried out by its id (:func:`carry_out`,
recorded in ``audit.dsr_completions``): the Airflow run is given the id only, so no personal
value reaches Airflow's metadata. Personal data is read only as ``steward`` through
``pii.read_customer``, after the read is logged in its own committed transaction
(:func:`log_read`). A correction or a consent withdrawal is a new CRM member version
(``raw.crm_members`` with ``_source_file = 'dsr/<request id>'``): it takes effect from the moment
it is made, so the next grading uses it and past lists stay as graded. Erasure removes the
person's personal data from the warehouse and adds their keyed identifiers to the erasure
ledger, which every later load consults; the pseudonymous grading history stays intact.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from tierhouse.errors import TierhouseError
from tierhouse.periods import CHINA
from tierhouse.privacy.crypto import decrypt, encrypt, is_encrypted, normalise_phone, pseudonymise, record_subject_keys
from tierhouse.warehouse.connection import WarehouseUrl, connect
from tierhouse.warehouse.migrate import require_migrated
from tierhouse.warehouse.rows import fetch_dicts, to_json

KINDS = ("access", "correction", "consent_withdrawal", "erasure")
CORRECTABLE = {"customer_type", "name", "phone", "address"}
PERSONAL_FIELDS = ("name", "phone", "address")
#: Why a steward may read personal data (``audit.access_reasons``); the log keeps the code.
READ_REASONS = ("dsr_access", "dsr_verification", "deidentification_gate", "key_rotation")
_VALUE_CONTEXT = "audit.dsr_request_values.value"
#: What ``audit.dsr_requests.details`` says of a request other than a correction.
_DETAILS: dict[str, dict[str, object]] = {"access": {"format": "json"}, "consent_withdrawal": {"grading_consent": False}}


class RequestError(TierhouseError, ValueError):
    """A request that cannot be carried out; the message says why."""


@dataclass(frozen=True)
class Request:
    request_id: str
    kind: str
    customer_key: str
    field: str | None
    value: str | None  # decrypted


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


def _checked_value(field: str | None, value: str | None) -> str:
    if not field or value is None:
        raise RequestError("a correction needs the field and its correct value")
    if field not in CORRECTABLE:
        raise RequestError(f"{field!r} cannot be corrected here; one of {sorted(CORRECTABLE)}")
    if field == "customer_type" and value not in ("individual", "enterprise"):
        raise RequestError("customer_type is individual or enterprise")
    if field == "phone":
        try:
            return normalise_phone(value)
        except ValueError:
            raise RequestError("not a mainland mobile number") from None
    return value


def record(
    url: WarehouseUrl,
    kind: str,
    member_id: str,
    requested_by: str,
    reason: str,
    field: str | None = None,
    value: str | None = None,
) -> str:
    """Record a request (committed) and return its id; :func:`carry_out` does it. A correction's
    value is kept encrypted, and only until it is carried out."""
    if kind not in KINDS:
        raise RequestError(f"unknown request kind {kind!r}")
    if kind == "correction":
        value = _checked_value(field, value)
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute("select 1 from audit.erasure_ledger where subject_key = %s", (pseudonymise("member_id", member_id),))
        if cur.fetchone():
            raise RequestError(f"{member_id} has been erased: the warehouse holds no personal data of theirs")
        latest = _latest_member_version(cur, member_id)
        if kind == "correction":
            # personal values are never written to the audit tables in clear, only which field changed
            details: dict = {"field": field, **({"from": latest[field], "to": value} if field == "customer_type" else {})}
        else:
            details = dict(_DETAILS.get(kind, {}))
        request_id = _record(cur, kind, member_id, requested_by, reason, details)
        if kind == "correction":
            cur.execute(
                "insert into audit.dsr_request_values (request_id, field, value) values (%s, %s, %s)",
                (request_id, field, encrypt(value, _VALUE_CONTEXT)),
            )
        return request_id


def load_request(url: WarehouseUrl, request_id: str) -> Request:
    """A recorded request not yet carried out, its correction value decrypted."""
    try:
        uuid.UUID(request_id)
    except ValueError:
        raise RequestError(f"{request_id!r} is not a request id") from None
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute(
            "select r.kind, r.customer_key, v.field, v.value, c.request_id is not null from audit.dsr_requests as r"
            " left join audit.dsr_request_values as v using (request_id)"
            " left join audit.dsr_completions as c using (request_id) where r.request_id = %s",
            (request_id,),
        )
        found = cur.fetchone()
    if found is None:
        raise RequestError(f"no data-subject request {request_id}")
    kind, customer_key, field, token, done = found
    if done:
        raise RequestError(f"data-subject request {request_id} has been carried out already")
    return Request(request_id, kind, customer_key, field, decrypt(token, _VALUE_CONTEXT))


def _complete(cur, request_id: str, outcome: dict) -> None:
    cur.execute("delete from audit.dsr_request_values where request_id = %s", (request_id,))
    cur.execute("insert into audit.dsr_completions (request_id, outcome) values (%s, %s)", (request_id, to_json(outcome)))


def log_read(url: WarehouseUrl, customer_key: str, what: str, reason_code: str, dsr_request_id: str | None = None) -> str:
    """Step one of every read of personal data: the access-log row, written and committed in a
    transaction of its own, so that no rollback of the read can take it back. Returns its id,
    which the read functions accept once and only from another transaction."""
    with connect(url) as conn, conn.cursor() as cur:
        require_migrated(cur)
        cur.execute("select audit.log_personal_data_read(%s, %s, %s, %s)", (customer_key, what, reason_code, dsr_request_id))
        return str(cur.fetchone()[0])


def read_personal_data(url: WarehouseUrl, member_id: str, reason_code: str, dsr_request_id: str | None = None) -> list[dict]:
    """Decrypted personal data of one member, read as steward through the logged function."""
    read_id = log_read(url, member_id, "customer", reason_code, dsr_request_id)
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("select source, row_key, field, ciphertext from pii.read_customer(%s)", (read_id,))
        rows = cur.fetchall()
    return [
        {"source": source, "record": row_key, "field": field, "value": decrypt(token, f"pii.{source}.{field}")}
        for source, row_key, field, token in rows
    ]


def customer_names(url: WarehouseUrl, reason_code: str = "deidentification_gate") -> list[str]:
    """Every customer's name, decrypted, read as steward (one access-log entry)."""
    read_id = log_read(url, "*", "customer_names", reason_code)
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("select ciphertext from pii.customer_names(%s)", (read_id,))
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
    request_id = record(url, "access", member_id, requested_by, reason)
    return _export(url, load_request(url, request_id), out_dir, grading_history)


def _export(url: WarehouseUrl, request: Request, out_dir: Path, grading_history: list[dict]) -> Path:
    member_id, request_id = request.customer_key, request.request_id
    personal_data = read_personal_data(url, member_id, "dsr_access", request_id)
    with connect(url) as conn, conn.cursor() as cur:
        report = {
            "request_id": request_id,
            "customer": member_id,
            "prepared_at": datetime.now(UTC).isoformat(),
            "personal_data": personal_data,
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
        path = out_dir / f"{_export_prefix(member_id)}{request_id[:8]}.json"
        path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str))
        path.chmod(0o600)  # it holds personal data
        # the file name holds the member id: the completion records where, by request id only
        _complete(cur, request_id, {"export": request_id[:8]})
    return path


def _export_prefix(member_id: str) -> str:
    return f"dsr_access_{member_id}_"


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
    request_id = record(url, "correction", member_id, requested_by, reason, field, value)
    _correct(url, load_request(url, request_id), effective_at)
    return request_id


def _correct(url: WarehouseUrl, request: Request, effective_at: datetime | None) -> None:
    field, value = request.field, _checked_value(request.field, request.value)
    assert field is not None  # _checked_value refuses a request without one
    with connect(url) as conn, conn.cursor() as cur:
        latest = _latest_member_version(cur, request.customer_key)
        changes = {field: value} if field == "customer_type" else {}
        if field == "phone":
            changes["phone_key"] = pseudonymise("phone", value)
        personal = {field: value} if field in PERSONAL_FIELDS else {}
        _new_member_version(cur, latest, request.request_id, changes, personal, effective_at)
        _complete(cur, request.request_id, {"field": field})


def withdraw_consent(
    url: WarehouseUrl, member_id: str, requested_by: str, reason: str, effective_at: datetime | None = None
) -> str:
    """Art. 7: from ``effective_at`` (now) the customer is not graded; published lists stay."""
    request_id = record(url, "consent_withdrawal", member_id, requested_by, reason)
    _withdraw_consent(url, load_request(url, request_id), effective_at)
    return request_id


def _withdraw_consent(url: WarehouseUrl, request: Request, effective_at: datetime | None) -> None:
    with connect(url) as conn, conn.cursor() as cur:
        latest = _latest_member_version(cur, request.customer_key)
        _new_member_version(cur, latest, request.request_id, {"grading_consent": False}, {}, effective_at)
        _complete(cur, request.request_id, {"grading_consent": False})


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
    # the personal values are carried over inside the database: the steward never reads them
    field, value = next(iter(personal_changes.items()), (None, None))
    token = encrypt(value, f"pii.crm_members.{field}") if field else None
    cur.execute("select pii.add_member_version(%s, %s, %s, %s)", (request_id, now, field, token))


def erase(url: WarehouseUrl, member_id: str, requested_by: str, reason: str, exports_dir: Path | None = None) -> str:
    """Erase the customer's personal data from the warehouse (names, phone numbers, addresses,
    staff notes, quarantined records, the shop extract's orders, pending correction values) and
    their earlier access exports in ``exports_dir``; their keyed member id and phone numbers go
    to the erasure ledger, so no later load brings them back. The landing files are cleaned by
    :func:`tierhouse.ingest.loaders.purge_erased_subjects`. The pseudonymous history (grades,
    reviews, appeals) stays: it identifies no one without the personal data, and auditors need it."""
    request_id = record(url, "erasure", member_id, requested_by, reason)
    _erase(url, load_request(url, request_id), exports_dir)
    return request_id


def _erase(url: WarehouseUrl, request: Request, exports_dir: Path | None) -> dict[str, int]:
    member_id, request_id = request.customer_key, request.request_id
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("select distinct phone_key from raw.crm_members where member_id = %s and phone_key is not null", (member_id,))
        keys = [(pseudonymise("member_id", member_id), "member_id"), *((key, "phone") for (key,) in cur.fetchall())]
        cur.execute(
            "insert into audit.erasure_ledger (subject_key, kind, request_id)"
            " select key, kind, %s from unnest(%s::text[], %s::text[]) as k (key, kind) on conflict do nothing",
            (request_id, [k for k, _ in keys], [kind for _, kind in keys]),
        )
        erased = {key for key, _ in keys}
        outcome = {"ledger_keys": len(keys)}
        cur.execute("select member_versions, ticket_notes from pii.erase_customer(%s)", (request_id,))
        outcome["member_versions"], outcome["ticket_notes"] = cur.fetchone()
        outcome["quarantined_records"] = _delete_quarantined_records(cur, erased)
        # the extract's copy; the shop's own system erases in its own right (docs/PRIVACY.md)
        cur.execute(
            "with gone as (delete from raw.shop_orders where member_id = %s or phone_key = any(%s) returning order_id)"
            " delete from raw.shop_order_lines where order_id in (select order_id from gone)",
            (member_id, [k for k, kind in keys if kind == "phone"]),
        )
        outcome["shop_order_lines"] = cur.rowcount
        cur.execute(
            "delete from audit.dsr_request_values where request_id in"
            " (select request_id from audit.dsr_requests where customer_key = %s)",
            (member_id,),
        )
        outcome["pending_values"] = cur.rowcount
        exports = sorted(exports_dir.glob(f"{_export_prefix(member_id)}*.json")) if exports_dir and exports_dir.is_dir() else []
        outcome["exports"] = len(exports)
        _complete(cur, request_id, outcome)
    # after the commit: a failed delete leaves the erasure recorded, and it can be run again
    for export in exports:
        export.unlink(missing_ok=True)
    return outcome


def _delete_quarantined_records(cur, erased: set[str]) -> int:
    """Quarantined records of an erased person: any field of the record (decrypted where the
    source holds personal data) that keys to one of ``erased``. Quarantine holds the rejects only."""
    cur.execute("select ctid::text, raw_text from raw.quarantine where raw_text is not null")
    doomed = []
    for row_id, text in cur.fetchall():
        plain = (decrypt(text, "raw.quarantine.raw_text") if is_encrypted(text) else text) or ""
        if record_subject_keys(plain) & erased:
            doomed.append(row_id)
    cur.execute("delete from raw.quarantine where ctid = any(%s::tid[])", (doomed,))
    return cur.rowcount


def carry_out(url: WarehouseUrl, request_id: str, out_dir: Path, history_of: Callable[[str], list[dict]]) -> tuple[Request, str]:
    """Carry out a recorded request by its id; returns it and what was done, without personal
    data (the member id included: the answer goes to Airflow's metadata)."""
    request = load_request(url, request_id)
    if request.kind == "access":
        path = _export(url, request, out_dir, history_of(request.customer_key))
        return request, f"access {request_id}: the export is in {path.parent} ({path.name.rsplit('_', 1)[-1]})"
    if request.kind == "correction":
        _correct(url, request, None)
        return request, f"correction {request_id}: {request.field} corrected"
    if request.kind == "consent_withdrawal":
        _withdraw_consent(url, request, None)
        return request, f"consent withdrawal {request_id}: no longer graded"
    outcome = _erase(url, request, out_dir)
    return request, f"erasure {request_id}: personal data erased ({', '.join(f'{k} {v}' for k, v in outcome.items())})"
