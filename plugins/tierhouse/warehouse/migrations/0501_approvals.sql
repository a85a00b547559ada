-- P2 (seed 001, "评估结果经相关部门审核确认后…通知客户"): a list whose policy file says
-- approval_required takes effect only when an approver records the approval: who, when and a
-- comment (checked for personal data at entry, like review reasons), with the run of the approved
-- list it published. Never by time-out (tierhouse.lifecycle.review). Append-only, like the rest
-- of the history; one approval per policy and period.

create table if not exists history.approvals (
    approval_id     uuid        primary key,
    policy          text        not null,
    period_month    date        not null,
    initial_run_id  uuid        not null references history.grading_runs (run_id),
    approver        text        not null check (length(trim(approver)) > 0),
    comment         text        not null check (length(trim(comment)) > 0),
    run_id          uuid        not null references history.grading_runs (run_id),
    approved_at     timestamptz not null default now(),
    unique (policy, period_month)
);

-- the approved list is published as a list of its own kind
alter table history.grading_runs drop constraint if exists grading_runs_list_kind_check;
alter table history.grading_runs add constraint grading_runs_list_kind_check
    check (list_kind in ('initial', 'confirmed', 'quarterly', 'appeal', 'restatement', 'approved'));

create or replace trigger approvals_append_only before update or delete on history.approvals
    for each row execute function history.refuse_change();
create or replace trigger approvals_no_truncate before truncate on history.approvals
    for each statement execute function history.refuse_change();
