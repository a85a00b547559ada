"""DDL of the landing tables that Python loaders own (dbt owns everything downstream).

Applied idempotently before every load so a fresh warehouse needs no migration step.
"""

from __future__ import annotations

from tierhouse.ingest.sources import SOURCES, SQL_TYPES, CsvSource

RAW_DDL = """
create schema if not exists raw;

create table if not exists raw.load_manifest (
    source           text        not null,
    file_name        text        not null,
    sha256           text        not null,
    rows_read        integer     not null,
    rows_loaded      integer     not null,
    rows_quarantined integer     not null,
    -- unbounded: a quarantined line may carry any number the till printed
    amount_read        numeric not null,
    amount_loaded      numeric not null,
    amount_quarantined numeric not null,
    loaded_at        timestamptz not null default now(),
    primary key (source, file_name)
);

create table if not exists raw.shop_orders (
    order_id    text        primary key,
    member_id   text,
    phone_key   text,
    channel     text        not null,
    status      text        not null,
    ordered_at  timestamp   not null,
    updated_at  timestamp   not null,
    _batch_id   text        not null,
    _loaded_at  timestamptz not null default now()
);

create table if not exists raw.shop_order_lines (
    order_id            text           not null,
    line_no             integer        not null,
    sku                 text           not null,
    business_line       text,
    customization_level text,
    quantity            integer        not null,
    unit_price          numeric(12, 2),
    amount              numeric(12, 2) not null,
    _batch_id           text           not null,
    _loaded_at          timestamptz    not null default now(),
    primary key (order_id, line_no)
);

create table if not exists raw.extract_watermarks (
    source      text primary key,
    watermark   timestamp   not null,
    updated_at  timestamptz not null default now()
);

create table if not exists raw.quarantine (
    source       text        not null,
    file_name    text        not null,
    line_number  integer,
    reason_code  text        not null,
    detail       text,
    raw_text     text,
    quarantined_at timestamptz not null default now()
);
create index if not exists quarantine_source_file on raw.quarantine (source, file_name);

create table if not exists raw.policy_versions (
    policy          text        not null,
    version         integer     not null,
    effective_from  date        not null,
    sha256          text        not null,
    document        jsonb       not null,
    loaded_at       timestamptz not null default now(),
    primary key (policy, version)
);

create table if not exists raw.policy_tier_conditions (
    policy        text    not null,
    version       integer not null,
    tier          text    not null,
    tier_rank     integer not null,
    tier_label    text    not null,
    condition_id  text    not null,
    match_group   text    not null check (match_group in ('all', 'any')),
    indicator     text    not null,
    operator      text    not null check (operator in ('>=', '>', '<=', '<')),
    threshold     numeric not null,
    primary key (policy, version, tier, condition_id)
);

create table if not exists raw.policy_score_bands (
    policy     text    not null,
    version    integer not null,
    score      text    not null,
    weight     numeric not null,
    band       text    not null,
    band_rank  integer not null,
    points     numeric not null,
    primary key (policy, version, score, band)
);

create table if not exists raw.policy_band_conditions (
    policy        text    not null,
    version       integer not null,
    score         text    not null,
    band          text    not null,
    condition_id  text    not null,
    match_group   text    not null check (match_group in ('all', 'any')),
    indicator     text    not null,
    operator      text    not null check (operator in ('>=', '>', '<=', '<')),
    threshold     numeric not null,
    primary key (policy, version, score, band, condition_id)
);

create table if not exists raw.policy_regrade_conditions (
    policy        text    not null,
    version       integer not null,
    rule          text    not null,
    from_tier     text    not null,
    to_tier       text    not null,
    condition_id  text    not null,
    match_group   text    not null check (match_group in ('all', 'any')),
    indicator     text    not null,
    operator      text    not null check (operator in ('>=', '>', '<=', '<')),
    threshold     numeric not null,
    primary key (policy, version, rule, condition_id)
);

create table if not exists raw.policy_settings (
    policy    text    not null,
    version   integer not null,
    setting   text    not null,
    value     numeric not null,
    primary key (policy, version, setting)
);
"""

SHOP_DDL = """
create schema if not exists shop;

create table if not exists shop.orders (
    order_id    text primary key,
    member_id   text,
    phone       text,  -- guest checkouts leave a phone number instead of a member id
    channel     text      not null,
    status      text      not null,
    ordered_at  timestamp not null,
    updated_at  timestamp not null
);
create index if not exists orders_updated_at on shop.orders (updated_at);

create table if not exists shop.order_lines (
    order_id            text           not null references shop.orders (order_id),
    line_no             integer        not null,
    sku                 text           not null,
    business_line       text,
    customization_level text,
    quantity            integer        not null,
    unit_price          numeric(12, 2),
    amount              numeric(12, 2) not null,
    primary key (order_id, line_no)
);
"""


def source_ddl(source: CsvSource) -> str:
    """Landing table of a file source, and its restricted twin in ``pii`` when it has personal data."""
    columns = [f"{c.raw_name} {SQL_TYPES[c.kind]}{' not null' if c.required else ''}" for c in source.columns if c.raw_name]
    ddl = f"""
create table if not exists raw.{source.table} (
    {", ".join(columns)},
    _source_file text not null,
    _source_line integer not null,
    _loaded_at timestamptz not null default now()
);
create index if not exists {source.table}_source_file on raw.{source.table} (_source_file);
"""
    if source.restricted_columns:
        by_name = {c.name: c for c in source.columns}
        personal = [f"{name} {SQL_TYPES[by_name[name].kind]}" for name in source.restricted_columns[:-2]]
        ddl += f"""
create schema if not exists pii;
revoke all on schema pii from public;
create table if not exists pii.{source.table} (
    {", ".join(personal)},
    _source_file text not null,
    _source_line integer not null
);
create index if not exists {source.table}_source_file on pii.{source.table} (_source_file);
"""
    return ddl


def all_ddl() -> str:
    return RAW_DDL + "".join(source_ddl(source) for source in SOURCES.values())


def apply(conn, ddl: str) -> None:
    with conn.cursor() as cur:
        # Two loaders racing to create the same table would otherwise fail on the catalog.
        cur.execute("select pg_advisory_xact_lock(hashtext('tierhouse.ddl'))")
        cur.execute(ddl)
