with

indicator_values as (

    select * from {{ ref('int_customer_indicator_values') }}

),

scores as (

    select * from {{ ref('int_customer_scores') }}

),

customer_periods as (

    select distinct
        customer_period_id,
        policy_version_id
    from indicator_values

),

final as (

    -- everything a tier rule may test: indicators, score points (score.<name>) and the
    -- weighted composite score, computed here once for every model that needs it
    select
        indicator_values.customer_period_id,
        indicator_values.policy_version_id,
        indicator_values.indicator,
        indicator_values.indicator_value
    from indicator_values
    union all
    select
        scores.customer_period_id,
        customer_periods.policy_version_id,
        '{{ var("score_indicator_prefix") }}' || scores.score as indicator,
        scores.points as indicator_value
    from scores
    inner join customer_periods
        on scores.customer_period_id = customer_periods.customer_period_id
    union all
    select
        scores.customer_period_id,
        customer_periods.policy_version_id,
        '{{ var("composite_indicator") }}' as indicator,
        sum(scores.weighted_points) as indicator_value
    from scores
    inner join customer_periods
        on scores.customer_period_id = customer_periods.customer_period_id
    group by scores.customer_period_id, customer_periods.policy_version_id

)

select * from final
