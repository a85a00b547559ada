with

indicator_values as (

    select * from {{ ref('int_customer_indicator_values') }}

),

scores as (

    select * from {{ ref('fct_customer_scores') }}

),

tiers as (

    select * from {{ ref('fct_customer_tiers') }}

),

policy_conditions as (

    select * from {{ ref('int_policy_conditions') }}

),

used_indicators as (

    -- what a policy version's tier rules and score bands test; the join to indicator_values
    -- below keeps the raw indicators among them (not score.<name> nor the composite score)
    select distinct
        policy_version_id,
        indicator
    from policy_conditions
    where rule_kind in ('tier', 'band')

),

items as (

    select
        indicator_values.customer_period_id,
        'indicator' as item_kind,
        indicator_values.indicator as item,
        indicator_values.indicator_value as item_value,
        null::text as band,
        null::numeric as points,
        null::numeric as weight,
        null::numeric as weighted_points
    from indicator_values
    inner join used_indicators
        on
            indicator_values.policy_version_id = used_indicators.policy_version_id
            and indicator_values.indicator = used_indicators.indicator
    union all
    select
        customer_period_id,
        'score' as item_kind,
        score as item,
        null::numeric as item_value,
        band,
        points,
        score_weight as weight,
        weighted_points
    from scores
    union all
    select
        customer_period_id,
        'composite' as item_kind,
        '{{ var("composite_indicator") }}' as item,
        composite_score as item_value,
        null::text as band,
        null::numeric as points,
        null::numeric as weight,
        null::numeric as weighted_points
    from tiers
    where composite_score is not null

),

final as (

    select
        items.customer_period_id || '/' || items.item_kind || ':' || items.item as grading_basis_id,
        items.customer_period_id,
        tiers.policy,
        tiers.policy_version,
        tiers.period_month,
        tiers.customer_key,
        items.item_kind,
        items.item,
        items.item_value,
        items.band,
        items.points,
        items.weight,
        items.weighted_points,
        tiers.tier,
        tiers.decided_by
    from items
    inner join tiers
        on items.customer_period_id = tiers.customer_period_id

)

select * from final
