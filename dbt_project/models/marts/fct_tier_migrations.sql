with

tiers as (

    select * from {{ ref('fct_customer_tiers') }}

),

periods as (

    select * from {{ ref('int_grading_periods') }}

),

list_months as (

    -- each list month of a policy's calendar with the list month before it
    select
        periods.policy,
        periods.period_month,
        lag(periods.period_month) over (partition by periods.policy order by periods.period_month) as previous_month
    from periods
    where periods.is_list_month

),

pairs as (

    select
        list_months.policy,
        list_months.period_month,
        list_months.previous_month
    from list_months
    where list_months.previous_month is not null

),

current_tiers as (

    select
        pairs.policy,
        pairs.period_month,
        pairs.previous_month,
        tiers.customer_key,
        tiers.tier,
        tiers.tier_rank
    from pairs
    inner join tiers
        on
            pairs.policy = tiers.policy
            and pairs.period_month = tiers.period_month

),

previous_tiers as (

    select
        pairs.policy,
        pairs.period_month,
        pairs.previous_month,
        tiers.customer_key,
        tiers.tier,
        tiers.tier_rank
    from pairs
    inner join tiers
        on
            pairs.policy = tiers.policy
            and pairs.previous_month = tiers.period_month

),

pair_customers as (

    -- everyone graded on either list of a pair; one list only means they entered or left
    select
        current_tiers.policy,
        current_tiers.period_month,
        current_tiers.previous_month,
        current_tiers.customer_key
    from current_tiers
    union
    select
        previous_tiers.policy,
        previous_tiers.period_month,
        previous_tiers.previous_month,
        previous_tiers.customer_key
    from previous_tiers

),

paired as (

    select
        pair_customers.policy,
        pair_customers.period_month,
        pair_customers.previous_month,
        previous_tiers.tier as from_tier,
        current_tiers.tier as to_tier,
        case
            when previous_tiers.tier is null then 'entered'
            when current_tiers.tier is null then 'left'
            when current_tiers.tier_rank < previous_tiers.tier_rank then 'up'
            when current_tiers.tier_rank > previous_tiers.tier_rank then 'down'
            else 'same'
        end as direction
    from pair_customers
    left join current_tiers
        on
            pair_customers.policy = current_tiers.policy
            and pair_customers.period_month = current_tiers.period_month
            and pair_customers.customer_key = current_tiers.customer_key
    left join previous_tiers
        on
            pair_customers.policy = previous_tiers.policy
            and pair_customers.period_month = previous_tiers.period_month
            and pair_customers.customer_key = previous_tiers.customer_key

),

final as (

    select
        paired.policy || '/' || to_char(paired.period_month, 'YYYY-MM') || '/'
        || coalesce(paired.from_tier, '-') || '>' || coalesce(paired.to_tier, '-') as tier_migration_id,
        paired.policy,
        paired.previous_month,
        paired.period_month,
        paired.from_tier,
        paired.to_tier,
        paired.direction,
        count(*) as customers
    from paired
    group by paired.policy, paired.previous_month, paired.period_month, paired.from_tier, paired.to_tier, paired.direction

)

select * from final
