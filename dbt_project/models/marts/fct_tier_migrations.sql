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

pair_tiers as (

    -- each customer's tier on either list of a pair
    select
        pairs.policy,
        pairs.period_month,
        pairs.previous_month,
        tiers.customer_key,
        tiers.tier,
        tiers.tier_rank,
        tiers.period_month = pairs.period_month as is_current
    from pairs
    inner join tiers
        on
            pairs.policy = tiers.policy
            and tiers.period_month in (pairs.period_month, pairs.previous_month)

),

customer_moves as (

    -- one list only means the customer entered or left the graded population
    select
        pair_tiers.policy,
        pair_tiers.period_month,
        pair_tiers.previous_month,
        pair_tiers.customer_key,
        max(pair_tiers.tier) filter (where not pair_tiers.is_current) as from_tier,
        max(pair_tiers.tier) filter (where pair_tiers.is_current) as to_tier,
        max(pair_tiers.tier_rank) filter (where not pair_tiers.is_current) as from_rank,
        max(pair_tiers.tier_rank) filter (where pair_tiers.is_current) as to_rank
    from pair_tiers
    group by pair_tiers.policy, pair_tiers.period_month, pair_tiers.previous_month, pair_tiers.customer_key

),

paired as (

    select
        customer_moves.policy,
        customer_moves.period_month,
        customer_moves.previous_month,
        customer_moves.from_tier,
        customer_moves.to_tier,
        case
            when customer_moves.from_tier is null then 'entered'
            when customer_moves.to_tier is null then 'left'
            when customer_moves.to_rank < customer_moves.from_rank then 'up'
            when customer_moves.to_rank > customer_moves.from_rank then 'down'
            else 'same'
        end as direction
    from customer_moves

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
