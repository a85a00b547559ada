-- Late data for a published month is a restatement candidate (0003): the list in force stays and a
-- person decides. The candidate's whole list is kept (to show whose grade would change and to
-- publish exactly that list if accepted), and each decision is recorded with who, why and, when
-- accepted, the run of the restated list. Append-only, like the rest of the history.

create table if not exists history.restatement_snapshots (
    candidate_id          uuid    not null references history.restatement_candidates (candidate_id),
    customer_key          text    not null,
    tier                  text    not null,
    tier_rank             integer not null,
    decided_by            text    not null,
    composite_score       numeric,
    consumption_attribute text,
    demand_feature        text,
    cooperation_feature   text,
    primary key (candidate_id, customer_key)
);

create table if not exists history.restatement_decisions (
    candidate_id  uuid        primary key references history.restatement_candidates (candidate_id),
    decision      text        not null check (decision in ('accepted', 'rejected')),
    decided_by    text        not null check (length(trim(decided_by)) > 0),
    reason        text        not null check (length(trim(reason)) > 0),
    run_id        uuid        references history.grading_runs (run_id),
    decided_at    timestamptz not null default now(),
    check ((decision = 'accepted') = (run_id is not null))
);

-- an accepted restatement is published as a list of its own kind
alter table history.grading_runs drop constraint if exists grading_runs_list_kind_check;
alter table history.grading_runs add constraint grading_runs_list_kind_check
    check (list_kind in ('initial', 'confirmed', 'quarterly', 'appeal', 'restatement'));

create or replace trigger restatement_snapshots_append_only before update or delete on history.restatement_snapshots
    for each row execute function history.refuse_change();
create or replace trigger restatement_snapshots_no_truncate before truncate on history.restatement_snapshots
    for each statement execute function history.refuse_change();
create or replace trigger restatement_decisions_append_only before update or delete on history.restatement_decisions
    for each row execute function history.refuse_change();
create or replace trigger restatement_decisions_no_truncate before truncate on history.restatement_decisions
    for each statement execute function history.refuse_change();
