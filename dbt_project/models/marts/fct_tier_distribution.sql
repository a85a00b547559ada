with

tiers as (

    select * from {{ ref('fct_customer_tiers') }}

),

periods as (

    select * from {{ ref('int_grading_periods') }}

),

counted as (

    select
        tiers.policy,
        tiers.policy_version,
        tiers.period_month,
        tiers.tier,
        min(tiers.tier_label) as tier_label,
        min(tiers.tier_rank) as tier_rank,
        count(*) as customers
    from tiers
    group by tiers.policy, tiers.policy_version, tiers.period_month, tiers.tier

),

final as (

    -- customers per tier of every graded month, and whether the policy lists that month
    select
        counted.policy || '/' || to_char(counted.period_month, 'YYYY-MM') || '/' || counted.tier
            as tier_distribution_id,
        counted.policy,
        counted.policy_version,
        counted.period_month,
        periods.is_list_month,
        counted.tier,
        counted.tier_label,
        counted.tier_rank,
        counted.customers,
        round(
            counted.customers::numeric / sum(counted.customers) over (partition by counted.policy, counted.period_month), 4
        ) as customer_share
    from counted
    inner join periods
        on
            counted.policy = periods.policy
            and counted.policy_version = periods.policy_version
            and counted.period_month = periods.period_month

)

select * from final
