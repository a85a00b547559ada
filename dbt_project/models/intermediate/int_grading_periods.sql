with

orders as (

    -- the months with purchases; zero-amount orders count in nothing (docs/POLICIES.md)
    select * from {{ ref('int_orders') }}
    where not is_zero_amount

),

policy_versions as (

    select * from {{ ref('stg_policy__versions') }}

),

policy_settings as (

    select * from {{ ref('stg_policy__settings') }}

),

months as (

    select
        generate_series(
            date_trunc('month', min(ordered_at)),
            date_trunc('month', max(ordered_at)),
            interval '1 month'
        )::date as period_month
    from orders

),

versions_in_force as (

    -- each period is graded by the newest version of a policy already in force at its end
    select distinct on (policy_versions.policy, months.period_month)
        policy_versions.policy_version_id,
        policy_versions.policy,
        policy_versions.policy_version,
        policy_versions.policy_document,
        coalesce(policy_versions.policy_document ->> 'lapsed_tier', '{{ var("no_tier") }}') as lapsed_tier,
        months.period_month,
        (months.period_month + interval '1 month' - interval '1 day')::date as period_end,
        -- the policy's calendar (tierhouse.grading.policy.CADENCES): monthly lists, or quarter ends
        coalesce(policy_versions.policy_document -> 'calendar' ->> 'cadence', 'monthly') = 'monthly'
        or extract(month from months.period_month) in (3, 6, 9, 12) as is_list_month
    from months
    inner join policy_versions
        on policy_versions.effective_from <= (months.period_month + interval '1 month' - interval '1 day')::date
    {%- if var('simulation_period', '') %}
    -- a what-if grades the one month it asks about (tierhouse simulate)
    where months.period_month = '{{ var("simulation_period") }}'::date
    {%- endif %}
    order by policy_versions.policy asc, months.period_month asc, policy_versions.policy_version desc

),

final as (

    select
        versions_in_force.policy_version_id || '/' || to_char(versions_in_force.period_month, 'YYYY-MM')
            as grading_period_id,
        versions_in_force.policy_version_id,
        versions_in_force.policy,
        versions_in_force.policy_version,
        versions_in_force.period_month,
        versions_in_force.period_end,
        versions_in_force.is_list_month,
        (versions_in_force.period_end - (policy_settings.window_months || ' months')::interval + interval '1 day')::date
            as window_start,
        policy_settings.window_months,
        policy_settings.big_ticket_order_min,
        -- the grade of a consenting customer with no purchase in the window (docs/POLICIES.md)
        versions_in_force.lapsed_tier,
        coalesce(
            versions_in_force.policy_document -> 'tiers' -> versions_in_force.lapsed_tier ->> 'label',
            case when versions_in_force.lapsed_tier = '{{ var("no_tier") }}' then '{{ var("no_tier_label") }}' end,
            versions_in_force.lapsed_tier
        ) as lapsed_tier_label,
        coalesce(
            (versions_in_force.policy_document -> 'tiers' -> versions_in_force.lapsed_tier ->> 'rank')::integer,
            {{ var("no_tier_rank") }}
        ) as lapsed_tier_rank,
        -- Art. 5 label thresholds, for policies that define them
        policy_settings.enterprise_label_min_share,
        policy_settings.special_needs_label_min_share,
        policy_settings.long_term_label_min_active_months,
        policy_settings.long_term_label_min_tenure_months
    from versions_in_force
    inner join policy_settings
        on versions_in_force.policy_version_id = policy_settings.policy_version_id

)

select * from final
