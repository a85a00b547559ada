"""DDL of the landing tables that Python loaders own (dbt owns everything downstream).

Applied idempotently before every load so a fresh warehouse needs no migration step.
"""

from __future__ import annotations

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

create table if not exists raw.pos_sales_lines (
    receipt_no          text           not null,
    line_no             integer        not null,
    sold_at             timestamp      not null,
    store_code          text           not null,
    member_id           text,
    sku                 text           not null,
    business_line       text,
    customization_level text,
    quantity            integer        not null,
    unit_price          numeric(12, 2),
    amount              numeric(12, 2) not null,
    _source_file        text           not null,
    _source_line        integer        not null,
    _loaded_at          timestamptz    not null default now()
);
create index if not exists pos_sales_lines_source_file on raw.pos_sales_lines (_source_file);

create table if not exists raw.shop_orders (
    order_id    text        primary key,
    member_id   text,
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


def apply(conn, ddl: str) -> None:
    with conn.cursor() as cur:
        # Two loaders racing to create the same table would otherwise fail on the catalog.
        cur.execute("select pg_advisory_xact_lock(hashtext('tierhouse.ddl'))")
        cur.execute(ddl)
