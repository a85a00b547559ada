with

features as (

    select * from {{ ref('int_customer_period_features') }}

),

grading_basis as (

    select * from {{ ref('fct_grading_basis') }}

),

tier_labels as (

    select distinct
        policy_version_id,
        tier,
        tier_label
    from {{ ref('stg_policy__tier_conditions') }}

),

tier_verdicts as (

    -- a tier is met when every `all` condition holds and, if it has `any` conditions, one of them does
    select
        customer_period_id,
        tier,
        tier_rank,
        coalesce(bool_and(is_met) filter (where match_group = 'all'), true)
        and coalesce(bool_or(is_met) filter (where match_group = 'any'), true) as is_met,
        string_agg(condition_id, ',' order by condition_id) filter (
            where match_group = 'any' and is_met
        ) as met_any_conditions
    from grading_basis
    group by customer_period_id, tier, tier_rank

),

best_tier as (

    select distinct on (customer_period_id)
        customer_period_id,
        tier,
        tier_rank,
        met_any_conditions
    from tier_verdicts
    where is_met
    order by customer_period_id asc, tier_rank asc

),

final as (

    select
        features.customer_period_id,
        features.policy,
        features.policy_version,
        features.period_month,
        features.customer_key,
        coalesce(best_tier.tier, 'none') as tier,
        coalesce(tier_labels.tier_label, '非高端') as tier_label,
        coalesce(best_tier.tier_rank, 99) as tier_rank,
        case
            when best_tier.tier is null then 'no tier rule met'
            when best_tier.met_any_conditions is null then best_tier.tier || ': all conditions met'
            else best_tier.tier || ': all conditions met, via ' || best_tier.met_any_conditions
        end as decided_by,
        features.spend
    from features
    left join best_tier
        on features.customer_period_id = best_tier.customer_period_id
    left join tier_labels
        on
            features.policy_version_id = tier_labels.policy_version_id
            and best_tier.tier = tier_labels.tier

)

select * from final
