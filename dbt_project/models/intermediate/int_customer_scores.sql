with

indicator_values as (

    select * from {{ ref('int_customer_indicator_values') }}

),

score_bands as (

    select * from {{ ref('stg_policy__score_bands') }}

),

policy_conditions as (

    select * from {{ ref('int_policy_conditions') }}

),

customer_periods as (

    select distinct
        customer_period_id,
        policy_version_id
    from indicator_values

),

condition_checks as (

    {{ check_policy_conditions('band', 'policy_conditions', 'indicator_values') }}

),

band_verdicts as (

    select
        customer_period_id,
        score,
        band,
        {{ rule_holds('is_met', 'match_group') }} as is_met
    from condition_checks
    group by customer_period_id, score, band

),

candidate_bands as (

    -- a band without conditions (the last, fallback band) always holds
    select
        customer_periods.customer_period_id,
        score_bands.score,
        score_bands.score_weight,
        score_bands.band,
        score_bands.band_rank,
        score_bands.points
    from customer_periods
    inner join score_bands
        on customer_periods.policy_version_id = score_bands.policy_version_id
    left join band_verdicts
        on
            customer_periods.customer_period_id = band_verdicts.customer_period_id
            and score_bands.score = band_verdicts.score
            and score_bands.band = band_verdicts.band
    where coalesce(band_verdicts.is_met, true)

),

final as (

    select distinct on (customer_period_id, score)
        customer_period_id || '/' || score as customer_score_id,
        customer_period_id,
        score,
        band,
        band_rank,
        points,
        score_weight,
        points * score_weight as weighted_points
    from candidate_bands
    order by customer_period_id asc, score asc, band_rank asc

)

select * from final
