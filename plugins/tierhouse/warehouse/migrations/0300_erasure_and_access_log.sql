-- Erasure that holds, data-subject requests that live in the warehouse, and an access log a
-- reader cannot skip (docs/PRIVACY.md).
--
-- * audit.erasure_ledger: the keyed hashes (never clear values) of every erased person's member
--   id and phone numbers; the loaders drop a row that matches on every later load.
-- * audit.dsr_request_values / audit.dsr_completions: a request is recorded first (its
--   correction value encrypted, like pii) and carried out by id, so the Airflow run is given the
--   request id only; the completion records what was done.
-- * The access log: a read of personal data needs a log row committed by another transaction
--   (pg_current_xact_id() differs), written by the same login and used once, so a read whose
--   transaction is rolled back still leaves its log row. The row records the login
--   (session_user) and the role acting, and a reason code instead of free text.
-- * The steward holds no privilege on the pii tables (not even count(*)): it reads through the
--   logged functions and changes personal data only through pii.add_member_version and
--   pii.erase_customer, each for a recorded request of its kind not yet carried out.

create table audit.erasure_ledger (
    subject_key text        primary key,  -- tierhouse.privacy.crypto.pseudonymise(kind, value)
    kind        text        not null check (kind in ('member_id', 'phone')),
    request_id  uuid        not null references audit.dsr_requests (request_id),
    erased_at   timestamptz not null default now()
);
create trigger erasure_ledger_append_only before update or delete on audit.erasure_ledger
    for each row execute function audit.refuse_change();
create trigger erasure_ledger_no_truncate before truncate on audit.erasure_ledger
    for each statement execute function audit.refuse_change();

-- A correction's value, encrypted (enc:v<n>:..., bound to this column); deleted once carried out
-- (it then lives in pii) or when the person is erased. Not append-only for that reason.
create table audit.dsr_request_values (
    request_id uuid primary key references audit.dsr_requests (request_id),
    field      text not null,
    value      text not null check (value ~ '^enc:v[0-9]+:')
);

create table audit.dsr_completions (
    request_id   uuid        primary key references audit.dsr_requests (request_id),
    completed_at timestamptz not null default now(),
    database_user text       not null default session_user,
    outcome      jsonb       not null
);
create trigger dsr_completions_append_only before update or delete on audit.dsr_completions
    for each row execute function audit.refuse_change();
create trigger dsr_completions_no_truncate before truncate on audit.dsr_completions
    for each statement execute function audit.refuse_change();

-- The reasons a steward may read personal data for; the log keeps the code, never free text.
create table audit.access_reasons (
    reason_code text primary key,
    description text not null
);
insert into audit.access_reasons (reason_code, description) values
    ('dsr_access', 'a data-subject access request: the export of everything held on the customer'),
    ('dsr_verification', 'checking that a data-subject request was carried out'),
    ('deidentification_gate', 'the de-identification gate looks for customer names outside pii'),
    ('free_text_check', 'staff free text is checked for customer names before it is written'),
    ('key_rotation', 're-encrypting personal data under a new key');

-- Rows before this migration keep their free text; new rows have a reason code instead.
alter table audit.access_log
    alter column requested_by drop not null,
    alter column reason drop not null,
    add column reason_code text references audit.access_reasons (reason_code),
    add column dsr_request_id uuid,
    add column read_id uuid unique,
    add column logged_xact xid8;
alter table audit.access_log add constraint access_log_reason_given
    check (reason_code is not null or (requested_by is not null and reason is not null));

-- A log row is used by one read; a separate table keeps the log itself append-only.
create table audit.access_log_reads (
    read_id  uuid        primary key references audit.access_log (read_id),
    read_at  timestamptz not null default now(),
    read_xact xid8       not null
);

drop function pii.read_customer(text, text, text);
drop function pii.customer_names(text, text);
drop function audit.log_personal_data_read(text, text, text, text);

-- Step one of every read, in its own transaction that the caller commits before reading.
create function audit.log_personal_data_read(p_customer_key text, p_what text, p_reason_code text, p_dsr_request_id uuid default null)
returns uuid language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    new_read_id uuid := gen_random_uuid();
begin
    if p_what not in ('customer', 'customer_names') then
        raise exception 'unknown read of personal data: %', p_what;
    end if;
    if not exists (select 1 from audit.access_reasons where reason_code = p_reason_code) then
        raise exception 'reading personal data needs a known reason code (audit.access_reasons)';
    end if;
    insert into audit.access_log (database_user, database_role, customer_key, what, reason_code, dsr_request_id, read_id, logged_xact)
    values (
        session_user,
        -- inside a security definer function current_user is the owner; the caller's role is this
        case when current_setting('role') = 'none' then session_user::text else current_setting('role') end,
        p_customer_key, p_what, p_reason_code, p_dsr_request_id, new_read_id, pg_current_xact_id()
    );
    return new_read_id;
end
$$;
revoke all on function audit.log_personal_data_read(text, text, text, uuid) from public;

-- The log row a read may use: committed by another transaction of the same login, unused.
create function audit.use_logged_read(p_read_id uuid, p_what text) returns text
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    entry audit.access_log%rowtype;
begin
    select * into entry from audit.access_log where read_id = p_read_id;
    if not found then
        raise exception 'no committed access-log entry %: log the read first (audit.log_personal_data_read) and commit', p_read_id;
    end if;
    if entry.logged_xact = pg_current_xact_id() then
        raise exception 'the read must be logged in its own committed transaction, not in the one that reads';
    end if;
    if entry.database_user <> session_user or entry.what <> p_what then
        raise exception 'access-log entry % is not for this login and read', p_read_id;
    end if;
    insert into audit.access_log_reads (read_id, read_xact) values (p_read_id, pg_current_xact_id());
    return entry.customer_key;
exception when unique_violation then
    raise exception 'access-log entry % has been used already: log every read', p_read_id;
end
$$;
revoke all on function audit.use_logged_read(uuid, text) from public;

-- The one way to one customer's personal data.
create function pii.read_customer(p_read_id uuid)
returns table (source text, row_key text, field text, ciphertext text)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    member text := audit.use_logged_read(p_read_id, 'customer');
begin
    return query
        select 'crm_members'::text, m.member_id || '@' || m.updated_at::text, f.field, f.value
        from pii.crm_members as m
        cross join lateral (values ('name', m.name), ('phone', m.phone), ('address', m.address)) as f (field, value)
        where m.member_id = member
        union all
        select 'service_tickets'::text, t.ticket_id, 'note'::text, t.note
        from pii.service_tickets as t
        where t.ticket_id in (select r.ticket_id from raw.service_tickets as r where r.member_id = member);
end
$$;
revoke all on function pii.read_customer(uuid) from public;

-- Every customer's name, for the de-identification gate to look for.
create function pii.customer_names(p_read_id uuid)
returns table (ciphertext text)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
    perform audit.use_logged_read(p_read_id, 'customer_names');
    return query select distinct m.name from pii.crm_members as m where m.name is not null;
end
$$;
revoke all on function pii.customer_names(uuid) from public;

create trigger access_log_reads_append_only before update or delete on audit.access_log_reads
    for each row execute function audit.refuse_change();
create trigger access_log_reads_no_truncate before truncate on audit.access_log_reads
    for each statement execute function audit.refuse_change();

-- A recorded request of one of ``kinds`` that has not been carried out; else an exception.
create function audit.pending_request(p_request_id uuid, p_kinds text[]) returns audit.dsr_requests
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    request audit.dsr_requests%rowtype;
begin
    select * into request from audit.dsr_requests where request_id = p_request_id;
    if not found or not request.kind = any(p_kinds) then
        raise exception 'no % request %', array_to_string(p_kinds, ' or '), p_request_id;
    end if;
    if exists (select 1 from audit.dsr_completions as c where c.request_id = p_request_id) then
        raise exception 'data-subject request % has been carried out already', p_request_id;
    end if;
    return request;
end
$$;
revoke all on function audit.pending_request(uuid, text[]) from public;

-- A correction or consent withdrawal adds a member version: the latest personal values carried
-- over (as stored, encrypted), one of them replaced by a correction's value, encrypted by the
-- caller. The steward never sees the values it carries over.
create function pii.add_member_version(p_request_id uuid, p_updated_at timestamp, p_field text, p_ciphertext text)
returns void language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    request audit.dsr_requests := audit.pending_request(p_request_id, array['correction', 'consent_withdrawal']);
    latest pii.crm_members%rowtype;
begin
    if p_field is not null and (request.kind <> 'correction' or p_field not in ('name', 'phone', 'address')) then
        raise exception 'a % request cannot change %', request.kind, p_field;
    end if;
    if p_field is not null and coalesce(p_ciphertext, '') !~ '^enc:v[0-9]+:' then
        raise exception 'personal data is stored encrypted (tierhouse.privacy.crypto.encrypt)';
    end if;
    select * into latest from pii.crm_members as m where m.member_id = request.customer_key
    order by m.updated_at desc limit 1;
    insert into pii.crm_members (member_id, updated_at, name, phone, address, _source_file, _source_line)
    values (
        request.customer_key, p_updated_at,
        case when p_field = 'name' then p_ciphertext else latest.name end,
        case when p_field = 'phone' then p_ciphertext else latest.phone end,
        case when p_field = 'address' then p_ciphertext else latest.address end,
        'dsr/' || p_request_id::text, 1
    );
end
$$;
revoke all on function pii.add_member_version(uuid, timestamp, text, text) from public;

-- Erasure: every CRM version and staff note of the request's customer. Returns what it deleted.
create function pii.erase_customer(p_request_id uuid)
returns table (member_versions bigint, ticket_notes bigint)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    request audit.dsr_requests := audit.pending_request(p_request_id, array['erasure']);
begin
    delete from pii.crm_members as m where m.member_id = request.customer_key;
    get diagnostics member_versions = row_count;
    delete from pii.service_tickets as t
    where t.ticket_id in (select r.ticket_id from raw.service_tickets as r where r.member_id = request.customer_key);
    get diagnostics ticket_notes = row_count;
    return next;
end
$$;
revoke all on function pii.erase_customer(uuid) from public;
