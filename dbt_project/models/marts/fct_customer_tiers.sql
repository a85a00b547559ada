with

features as (

    select * from {{ ref('int_customer_period_features') }}

),

rule_checks as (

    select * from {{ ref('fct_tier_rule_checks') }}

),

scores as (

    select * from {{ ref('int_customer_scores') }}

),

tier_conditions as (

    select * from {{ ref('stg_policy__tier_conditions') }}

),

policy_settings as (

    select * from {{ ref('stg_policy__settings') }}

),

tier_labels as (

    select distinct
        policy_version_id,
        tier,
        tier_label
    from tier_conditions

),

tier_verdicts as (

    select
        customer_period_id,
        tier,
        tier_rank,
        {{ rule_holds('is_met', 'match_group') }} as is_met,
        string_agg(condition_id, ',' order by condition_id) filter (
            where match_group = 'any' and is_met
        ) as met_any_conditions
    from rule_checks
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

composite_scores as (

    select
        customer_period_id,
        sum(weighted_points) as composite_score
    from scores
    group by customer_period_id

),

final as (

    select
        features.customer_period_id,
        features.policy,
        features.policy_version,
        features.period_month,
        features.customer_key,
        coalesce(best_tier.tier, 'none') as tier,
        coalesce(tier_labels.tier_label, '无') as tier_label,
        coalesce(best_tier.tier_rank, 99) as tier_rank,
        case
            when best_tier.tier is null then 'no tier rule met'
            when best_tier.met_any_conditions is null then best_tier.tier || ': all conditions met'
            else best_tier.tier || ': all conditions met, via ' || best_tier.met_any_conditions
        end as decided_by,
        composite_scores.composite_score,
        -- Art. 5 classification labels, for policies that define their thresholds
        case
            when policy_settings.enterprise_label_min_share is null then null
            when features.customer_type is not null then features.customer_type
            when features.enterprise_share >= policy_settings.enterprise_label_min_share then 'enterprise'
            else 'individual'
        end as consumption_attribute,
        case
            when policy_settings.special_needs_label_min_share is null then null
            when features.special_needs_share >= policy_settings.special_needs_label_min_share then 'special_needs'
            else 'regular'
        end as demand_feature,
        case
            when policy_settings.long_term_label_min_active_months is null then null
            when
                features.active_months >= policy_settings.long_term_label_min_active_months
                and features.tenure_months >= policy_settings.long_term_label_min_tenure_months
                then 'long_term'
            else 'seasonal'
        end as cooperation_feature,
        features.spend,
        '{{ invocation_id }}' as dbt_invocation_id
    from features
    inner join policy_settings
        on features.policy_version_id = policy_settings.policy_version_id
    left join best_tier
        on features.customer_period_id = best_tier.customer_period_id
    left join tier_labels
        on
            features.policy_version_id = tier_labels.policy_version_id
            and best_tier.tier = tier_labels.tier
    left join composite_scores
        on features.customer_period_id = composite_scores.customer_period_id

)

select * from final
