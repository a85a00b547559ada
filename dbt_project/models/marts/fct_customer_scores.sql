with

scores as (

    select * from {{ ref('int_customer_scores') }}

),

features as (

    select * from {{ ref('int_customer_period_features') }}

),

final as (

    select
        scores.customer_score_id,
        scores.customer_period_id,
        features.policy,
        features.policy_version,
        features.period_month,
        features.customer_key,
        scores.score,
        scores.band,
        scores.band_rank,
        scores.points,
        scores.score_weight,
        scores.weighted_points
    from scores
    inner join features
        on scores.customer_period_id = features.customer_period_id

)

select * from final
