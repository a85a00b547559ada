with

rule_checks as (

    select * from {{ ref('int_tier_rule_checks') }}

),

features as (

    select * from {{ ref('int_customer_period_features') }}

),

final as (

    select
        rule_checks.tier_rule_check_id,
        rule_checks.customer_period_id,
        features.policy,
        features.policy_version,
        features.period_month,
        features.customer_key,
        rule_checks.tier,
        rule_checks.tier_rank,
        rule_checks.condition_id,
        rule_checks.match_group,
        rule_checks.indicator,
        rule_checks.indicator_value,
        rule_checks.operator,
        rule_checks.threshold,
        rule_checks.is_met
    from rule_checks
    inner join features
        on rule_checks.customer_period_id = features.customer_period_id

)

select * from final
