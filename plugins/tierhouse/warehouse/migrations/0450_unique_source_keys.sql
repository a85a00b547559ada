-- Each source's key (tierhouse.ingest.sources.SOURCES, unique_key) is unique in its landing
-- table, enforced by the database: the loaders' advisory lock keeps tierhouse's own loads from
-- doubling a key, and these indexes stop every other writer too (a script, a restore, a
-- loader of an older version). The pii twins carry the same key.
--
-- A warehouse that already holds a key twice cannot take the index: the migration stops before
-- creating any, naming the table, how many keys repeat and the query that lists them.

do $$
declare
    item record;
    repeated bigint;
begin
    for item in
        select * from (values
            ('raw.pos_sales_lines', 'receipt_no, line_no'),
            ('raw.crm_members', 'member_id, updated_at'),
            ('raw.payments', 'payment_id'),
            ('raw.custom_orders', 'custom_order_id'),
            ('raw.service_tickets', 'ticket_id'),
            ('raw.imported_order_lines', 'order_id, line_no'),
            ('pii.crm_members', 'member_id, updated_at'),
            ('pii.service_tickets', 'ticket_id')
        ) as keys (table_name, key_columns)
    loop
        execute format(
            'select count(*) from (select 1 from %s group by %s having count(*) > 1) as d', item.table_name, item.key_columns
        ) into repeated;
        if repeated > 0 then
            raise exception '% holds % keys (%) more than once; list them with: select %, count(*), array_agg(_source_file) from % group by % having count(*) > 1; delete the extra rows (or reload the files that brought them), then run `tierhouse warehouse migrate` again',
                item.table_name, repeated, item.key_columns, item.key_columns, item.table_name, item.key_columns;
        end if;
    end loop;
end $$;

create unique index if not exists pos_sales_lines_key on raw.pos_sales_lines (receipt_no, line_no);
create unique index if not exists crm_members_key on raw.crm_members (member_id, updated_at);
create unique index if not exists payments_key on raw.payments (payment_id);
create unique index if not exists custom_orders_key on raw.custom_orders (custom_order_id);
create unique index if not exists service_tickets_key on raw.service_tickets (ticket_id);
create unique index if not exists imported_order_lines_key on raw.imported_order_lines (order_id, line_no);
create unique index if not exists crm_members_key on pii.crm_members (member_id, updated_at);
create unique index if not exists service_tickets_key on pii.service_tickets (ticket_id);
