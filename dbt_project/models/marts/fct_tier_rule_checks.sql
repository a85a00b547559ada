with

rule_values as (

    select * from {{ ref('int_customer_rule_values') }}

),

tier_conditions as (

    select * from {{ ref('stg_policy__tier_conditions') }}

),

features as (

    select * from {{ ref('int_customer_period_features') }}

),

checked as (

    select
        rule_values.customer_period_id,
        tier_conditions.tier,
        tier_conditions.tier_rank,
        tier_conditions.condition_id,
        tier_conditions.match_group,
        tier_conditions.indicator,
        rule_values.indicator_value,
        tier_conditions.operator,
        tier_conditions.threshold,
        {{ condition_holds('rule_values.indicator_value', 'tier_conditions.operator', 'tier_conditions.threshold') }}
            as is_met
    from tier_conditions
    inner join rule_values
        on
            tier_conditions.policy_version_id = rule_values.policy_version_id
            and tier_conditions.indicator = rule_values.indicator

),

final as (

    select
        checked.customer_period_id || '/' || checked.tier || '/' || checked.condition_id as tier_rule_check_id,
        checked.customer_period_id,
        features.policy,
        features.policy_version,
        features.period_month,
        features.customer_key,
        checked.tier,
        checked.tier_rank,
        checked.condition_id,
        checked.match_group,
        checked.indicator,
        checked.indicator_value,
        checked.operator,
        checked.threshold,
        checked.is_met
    from checked
    inner join features
        on checked.customer_period_id = features.customer_period_id

)

select * from final
