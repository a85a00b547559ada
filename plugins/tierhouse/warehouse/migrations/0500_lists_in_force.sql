-- P1 Art. 8: the confirmed list (after the review window) is what the business acts on, so BI
-- reads only lists in force: a confirmed, quarterly, appeal, restatement (or, once recorded, approved) list, or the
-- initial list of a policy with neither a review step nor an approval (P3). An initial list under
-- review is for reviewers (and the jobs that publish and check it), never for BI.
--
-- published.customer_tiers keeps the newest recorded list of each policy and period (the publish
-- paths replace it); in_force says whether BI may read it. tierhouse.lifecycle.publish.publish_run
-- sets it from the list kind and the policy file's calendar. A row-level policy enforces it for
-- bi_reader on the table itself, so no view, query or grant can show BI an unreviewed list.

alter table published.customer_tiers add column if not exists in_force boolean not null default true;
comment on column published.customer_tiers.in_force is
    'Whether the list is in force (what BI reads): false for an initial list still under review or awaiting approval.';

-- Lists published before this migration: the files are not in the database, so an initial list
-- is taken as under review when its policy has ever had a list confirmed (it has a review step).
update published.customer_tiers as t
set in_force = false
where t.list_kind = 'initial'
  and exists (select 1 from history.grading_runs as r where r.policy = t.policy and r.list_kind = 'confirmed');

alter table published.customer_tiers enable row level security;
drop policy if exists bi_reads_lists_in_force on published.customer_tiers;
create policy bi_reads_lists_in_force on published.customer_tiers for select to bi_reader using (in_force);
-- the jobs that publish, review, check and answer requests see every list; their grants
-- (tierhouse.privacy.access) still decide what each may do
drop policy if exists pipeline_reads_every_list on published.customer_tiers;
create policy pipeline_reads_every_list on published.customer_tiers
    to publisher, reviewer, gate, steward using (true) with check (true);

-- per policy, the newest list in force: what BI acts on today
create or replace view published.current_customer_tiers with (security_invoker = true) as
select t.policy, t.policy_version, t.period_month, t.list_kind, t.customer_key, t.tier, t.tier_label, t.tier_rank,
       t.consumption_attribute, t.demand_feature, t.cooperation_feature, t.published_at
from published.customer_tiers as t
where t.in_force
  and t.period_month = (
      select max(n.period_month) from published.customer_tiers as n where n.policy = t.policy and n.in_force
  );
comment on view published.current_customer_tiers is
    'Per policy, the newest list in force (confirmed, approved, quarterly, appeal or restatement; the initial list of a policy without review or approval); never a list under review. Pseudonymous keys only.';

create or replace view published.tier_distribution with (security_invoker = true) as
select policy, period_month, list_kind, tier, tier_label, tier_rank, count(*) as customers
from published.customer_tiers
where in_force
group by policy, period_month, list_kind, tier, tier_label, tier_rank;
comment on view published.tier_distribution is 'Customers per tier of every list in force, for dashboards.';
