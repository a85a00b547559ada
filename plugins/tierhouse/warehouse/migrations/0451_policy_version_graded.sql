-- Whether a policy version has graded a period: recorded a list in the history, or has one
-- published. Policy loading (the ingest login) refuses to change such a version's content but
-- may read neither history nor published; this answers that one question and nothing more.

create or replace function raw.policy_version_graded(p_policy text, p_version integer)
returns boolean language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select exists (select 1 from history.grading_runs as r where r.policy = p_policy and r.policy_version = p_version)
        or exists (select 1 from published.customer_tiers as t where t.policy = p_policy and t.policy_version = p_version)
$$;
revoke all on function raw.policy_version_graded(text, integer) from public;
