-- The grading history auditors rely on (tierhouse.lifecycle.history): every list recorded as a
-- run with one snapshot row per customer, restatement candidates, reviews, tier changes, appeals
-- and their answers; append-only, so triggers refuse UPDATE, DELETE and TRUNCATE on every table.
-- Then the published table BI tools read (tierhouse.lifecycle.publish).
--
-- Written with "if not exists" / "or replace" throughout so that it also adopts a warehouse the
-- code before migrations created (it changes nothing there).

create schema if not exists history;

create table if not exists history.grading_runs (
    run_id            uuid        primary key,
    policy            text        not null,
    policy_version    integer     not null,
    period_month      date        not null,
    list_kind         text        not null check (list_kind in ('initial', 'confirmed', 'quarterly', 'appeal')),
    airflow_run_id    text,
    dbt_invocation_id text,
    code_version      text        not null,
    policy_sha256     text        not null,
    input_fingerprint text        not null,
    snapshot_hash     text        not null,
    row_count         integer     not null,
    created_at        timestamptz not null default now()
);
-- a warehouse created before runs recorded their dbt invocation gets the column
alter table history.grading_runs add column if not exists dbt_invocation_id text;
create unique index if not exists grading_runs_one_initial_list
    on history.grading_runs (policy, policy_version, period_month) where list_kind = 'initial';

create table if not exists history.tier_snapshots (
    run_id                uuid    not null references history.grading_runs (run_id),
    customer_key          text    not null,
    tier                  text    not null,
    tier_rank             integer not null,
    decided_by            text    not null,
    composite_score       numeric,
    consumption_attribute text,
    demand_feature        text,
    cooperation_feature   text,
    primary key (run_id, customer_key)
);

create table if not exists history.restatement_candidates (
    candidate_id      uuid        primary key,
    published_run_id  uuid        not null references history.grading_runs (run_id),
    input_fingerprint text        not null,
    snapshot_hash     text        not null,
    changed_customers integer     not null,
    airflow_run_id    text,
    detected_at       timestamptz not null default now()
);

create table if not exists history.reviews (
    review_id     uuid        primary key,
    policy        text        not null,
    period_month  date        not null,
    customer_key  text        not null,
    reviewer      text        not null,
    new_tier      text        not null,
    reason        text        not null check (length(trim(reason)) > 0),
    created_at    timestamptz not null default now()
);

create table if not exists history.tier_changes (
    run_id        uuid        not null references history.grading_runs (run_id),
    customer_key  text        not null,
    from_tier     text,
    to_tier       text        not null,
    rule          text        not null,
    evidence      jsonb       not null,
    primary key (run_id, customer_key)
);

-- Art. 9: a customer's request to re-check a grade, answered within N working days.
create table if not exists history.appeals (
    appeal_id     uuid        primary key,
    policy        text        not null,
    period_month  date        not null,
    customer_key  text        not null,
    channel       text        not null,
    request       text        not null check (length(trim(request)) > 0),
    recorded_by   text        not null,
    received_at   timestamptz not null,
    due_on        date        not null
);

create table if not exists history.appeal_answers (
    appeal_id     uuid        primary key references history.appeals (appeal_id),
    answered_by   text        not null,
    outcome       text        not null check (outcome in ('upheld', 'corrected')),
    tier_before   text        not null,
    tier_after    text        not null,
    basis         text        not null check (length(trim(basis)) > 0),
    evidence      jsonb       not null,
    run_id        uuid        references history.grading_runs (run_id),
    answered_at   timestamptz not null
);

-- what is open and what is late, on the mainland-China date
create or replace view history.appeal_status as
select
    a.*,
    x.answered_at,
    x.outcome,
    case
        when x.appeal_id is not null and (x.answered_at at time zone 'Asia/Shanghai')::date <= a.due_on then 'answered'
        when x.appeal_id is not null then 'answered_late'
        when (now() at time zone 'Asia/Shanghai')::date > a.due_on then 'overdue'
        else 'open'
    end as status
from history.appeals as a
left join history.appeal_answers as x using (appeal_id);

create or replace function history.refuse_change() returns trigger language plpgsql as $$
begin
    raise exception 'history is append-only: % on %.% refused', tg_op, tg_table_schema, tg_table_name;
end
$$;

-- append-only: no update, delete or truncate of what was recorded
create or replace trigger grading_runs_append_only before update or delete on history.grading_runs
    for each row execute function history.refuse_change();
create or replace trigger grading_runs_no_truncate before truncate on history.grading_runs
    for each statement execute function history.refuse_change();
create or replace trigger tier_snapshots_append_only before update or delete on history.tier_snapshots
    for each row execute function history.refuse_change();
create or replace trigger tier_snapshots_no_truncate before truncate on history.tier_snapshots
    for each statement execute function history.refuse_change();
create or replace trigger restatement_candidates_append_only before update or delete on history.restatement_candidates
    for each row execute function history.refuse_change();
create or replace trigger restatement_candidates_no_truncate before truncate on history.restatement_candidates
    for each statement execute function history.refuse_change();
create or replace trigger reviews_append_only before update or delete on history.reviews
    for each row execute function history.refuse_change();
create or replace trigger reviews_no_truncate before truncate on history.reviews
    for each statement execute function history.refuse_change();
create or replace trigger tier_changes_append_only before update or delete on history.tier_changes
    for each row execute function history.refuse_change();
create or replace trigger tier_changes_no_truncate before truncate on history.tier_changes
    for each statement execute function history.refuse_change();
create or replace trigger appeals_append_only before update or delete on history.appeals
    for each row execute function history.refuse_change();
create or replace trigger appeals_no_truncate before truncate on history.appeals
    for each statement execute function history.refuse_change();
create or replace trigger appeal_answers_append_only before update or delete on history.appeal_answers
    for each row execute function history.refuse_change();
create or replace trigger appeal_answers_no_truncate before truncate on history.appeal_answers
    for each statement execute function history.refuse_change();

create schema if not exists published;

create table if not exists published.customer_tiers (
    policy          text        not null,
    policy_version  integer     not null,
    period_month    date        not null,
    customer_key    text        not null,
    tier            text        not null,
    tier_label      text,
    tier_rank       integer     not null,
    decided_by      text        not null,
    list_kind       text        not null default 'initial',
    composite_score numeric,
    consumption_attribute text,
    demand_feature  text,
    cooperation_feature text,
    published_at    timestamptz not null default now(),
    airflow_run_id  text,
    primary key (policy, period_month, customer_key)
);
comment on table published.customer_tiers is
    'Audited customer tiers, one row per policy, period and customer; what BI tools read.';
