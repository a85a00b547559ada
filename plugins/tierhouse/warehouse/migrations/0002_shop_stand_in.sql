-- The stand-in for the retailer's own online-shop database: the ingest DAG extracts the orders
-- changed since its watermark from here into raw.shop_orders; `tierhouse seed-shop` and the
-- demo fill it from the sample-data generator's files.

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
