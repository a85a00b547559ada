with

features as (

    select * from {{ ref('int_customer_period_features') }}

),

population as (

    select * from {{ ref('int_grading_population') }}

),

grading_periods as (

    select * from {{ ref('int_grading_periods') }}

),

rule_checks as (

    select * from {{ ref('int_tier_rule_checks') }}

),

rule_values as (

    select * from {{ ref('int_customer_rule_values') }}

),

tier_verdicts as (

    select
        customer_period_id,
        tier,
        tier_rank,
        tier_label,
        {{ rule_holds('is_met', 'match_group') }} as is_met,
        string_agg(condition_id, ',' order by condition_id) filter (
            where match_group = 'any' and is_met
        ) as met_any_conditions
    from rule_checks
    group by customer_period_id, tier, tier_rank, tier_label

),

best_tier as (

    select distinct on (customer_period_id)
        customer_period_id,
        tier,
        tier_rank,
        tier_label,
        met_any_conditions
    from tier_verdicts
    where is_met
    order by customer_period_id asc, tier_rank asc

),

composite_scores as (

    select
        customer_period_id,
        indicator_value as composite_score
    from rule_values
    where indicator = '{{ var("composite_indicator") }}'

),

purchasers as (

    select
        features.customer_period_id,
        features.policy,
        features.policy_version,
        features.period_month,
        features.customer_key,
        coalesce(best_tier.tier, '{{ var("no_tier") }}') as tier,
        coalesce(best_tier.tier_label, '{{ var("no_tier_label") }}') as tier_label,
        coalesce(best_tier.tier_rank, {{ var("no_tier_rank") }}) as tier_rank,
        case
            when best_tier.tier is null then 'no tier rule met'
            when best_tier.met_any_conditions is null then best_tier.tier || ': all conditions met'
            else best_tier.tier || ': all conditions met, via ' || best_tier.met_any_conditions
        end as decided_by,
        composite_scores.composite_score,
        -- Art. 5 classification labels, for policies that define their thresholds
        case
            when grading_periods.enterprise_label_min_share is null then null
            when features.customer_type is not null then features.customer_type
            when features.enterprise_share >= grading_periods.enterprise_label_min_share then 'enterprise'
            else 'individual'
        end as consumption_attribute,
        case
            when grading_periods.special_needs_label_min_share is null then null
            when features.special_needs_share >= grading_periods.special_needs_label_min_share then 'special_needs'
            else 'regular'
        end as demand_feature,
        case
            when grading_periods.long_term_label_min_active_months is null then null
            when
                features.active_months >= grading_periods.long_term_label_min_active_months
                and features.tenure_months >= grading_periods.long_term_label_min_tenure_months
                then 'long_term'
            else 'seasonal'
        end as cooperation_feature,
        features.spend,
        '{{ invocation_id }}' as dbt_invocation_id
    from features
    inner join grading_periods
        on features.grading_period_id = grading_periods.grading_period_id
    left join best_tier
        on features.customer_period_id = best_tier.customer_period_id
    left join composite_scores
        on features.customer_period_id = composite_scores.customer_period_id

),

lapsed as (

    -- a consenting customer with no purchase in the window since consenting still has one row:
    -- the policy's lapsed_tier, no score and no labels, as there is no behaviour to judge
    select
        population.customer_period_id,
        population.policy,
        population.policy_version,
        population.period_month,
        population.customer_key,
        grading_periods.lapsed_tier as tier,
        grading_periods.lapsed_tier_label as tier_label,
        grading_periods.lapsed_tier_rank as tier_rank,
        'no purchases in the window' as decided_by,
        null::numeric as composite_score,
        null::text as consumption_attribute,
        null::text as demand_feature,
        null::text as cooperation_feature,
        0::numeric as spend,
        '{{ invocation_id }}' as dbt_invocation_id
    from population
    inner join grading_periods
        on population.grading_period_id = grading_periods.grading_period_id
    where population.is_lapsed

),

final as (

    select * from purchasers
    union all
    select * from lapsed

)

select * from final
