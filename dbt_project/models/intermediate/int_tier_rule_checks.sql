with

rule_values as (

    select * from {{ ref('int_customer_rule_values') }}

),

policy_conditions as (

    select * from {{ ref('int_policy_conditions') }}

),

checked as (

    {{ check_policy_conditions('tier', 'policy_conditions', 'rule_values') }}

),

final as (

    select
        customer_period_id || '/' || rule || '/' || condition_id as tier_rule_check_id,
        customer_period_id,
        rule as tier,
        tier_rank,
        tier_label,
        condition_id,
        match_group,
        indicator,
        indicator_value,
        operator,
        threshold,
        is_met
    from checked

)

select * from final
