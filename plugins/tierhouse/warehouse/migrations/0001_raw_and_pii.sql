-- The landing tables the Python loaders write (dbt owns everything downstream): the load
-- manifest, quarantine, shop extract, policy tables, one table per file source in raw and, for
-- a source with personal data, its restricted twin in pii.
--
-- The per-source tables follow tierhouse.ingest.sources.SOURCES: raw holds every column a
-- source keeps in raw (an identifier to match on as <name>_key, a keyed hash; personal data
-- never), pii holds the row's key and its personal data. tests/test_migrations.py checks the
-- migrated columns against SOURCES, so a source changed without a migration fails the tests.
--
-- Written with "if not exists" throughout so that it also adopts a warehouse the code before
-- migrations created (it changes nothing there).

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

-- The restricted schema: personal data in clear only here, readable by nobody but the loader
-- and, through logged functions (0004), the steward.
create schema if not exists pii;
revoke all on schema pii from public;

-- source pos
create table if not exists raw.pos_sales_lines (
    receipt_no          text           not null,
    line_no             integer        not null,
    sold_at             timestamp      not null,
    store_code          text           not null,
    member_id           text,
    phone_key           text,
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

-- source crm
create table if not exists raw.crm_members (
    member_id            text        not null,
    phone_key            text,
    customer_type        text        not null,
    grading_consent      boolean     not null,
    grading_consent_at   timestamp,
    marketing_consent    boolean,
    marketing_consent_at timestamp,
    updated_at           timestamp   not null,
    _source_file         text        not null,
    _source_line         integer     not null,
    _loaded_at           timestamptz not null default now()
);
create index if not exists crm_members_source_file on raw.crm_members (_source_file);

create table if not exists pii.crm_members (
    member_id    text,
    updated_at   timestamp,
    name         text,
    phone        text,
    address      text,
    _source_file text    not null,
    _source_line integer not null
);
create index if not exists crm_members_source_file on pii.crm_members (_source_file);

-- source payments
create table if not exists raw.payments (
    payment_id   text           not null,
    order_ref    text           not null,
    member_id    text,
    amount       numeric(12, 2) not null,
    due_date     date           not null,
    paid_at      timestamp,
    method       text,
    _source_file text           not null,
    _source_line integer        not null,
    _loaded_at   timestamptz    not null default now()
);
create index if not exists payments_source_file on raw.payments (_source_file);

-- source custom_orders
create table if not exists raw.custom_orders (
    custom_order_id     text        not null,
    order_ref           text        not null,
    member_id           text,
    business_line       text        not null,
    customization_level text        not null,
    rare_flowers        boolean,
    imported_flowers    boolean,
    event_date          date,
    _source_file        text        not null,
    _source_line        integer     not null,
    _loaded_at          timestamptz not null default now()
);
create index if not exists custom_orders_source_file on raw.custom_orders (_source_file);

-- source feedback
create table if not exists raw.service_tickets (
    ticket_id    text        not null,
    member_id    text,
    order_ref    text,
    opened_at    timestamp   not null,
    closed_at    timestamp,
    category     text        not null,
    satisfaction integer,
    _source_file text        not null,
    _source_line integer     not null,
    _loaded_at   timestamptz not null default now()
);
create index if not exists service_tickets_source_file on raw.service_tickets (_source_file);

create table if not exists pii.service_tickets (
    ticket_id    text,
    note         text,
    _source_file text    not null,
    _source_line integer not null
);
create index if not exists service_tickets_source_file on pii.service_tickets (_source_file);

-- source imports
create table if not exists raw.imported_order_lines (
    order_id            text           not null,
    line_no             integer        not null,
    ordered_at          timestamp      not null,
    channel             text           not null,
    store_code          text,
    member_id           text,
    phone_key           text,
    sku                 text,
    business_line       text,
    customization_level text,
    quantity            integer        not null,
    amount              numeric(12, 2) not null,
    _source_file        text           not null,
    _source_line        integer        not null,
    _loaded_at          timestamptz    not null default now()
);
create index if not exists imported_order_lines_source_file on raw.imported_order_lines (_source_file);
