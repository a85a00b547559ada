with

indicator_values as (

    select * from {{ ref('int_customer_indicator_values') }}

),

tier_conditions as (

    select * from {{ ref('stg_policy__tier_conditions') }}

),

checked as (

    select
        indicator_values.customer_period_id,
        tier_conditions.policy,
        tier_conditions.policy_version,
        indicator_values.period_month,
        indicator_values.customer_key,
        tier_conditions.tier,
        tier_conditions.tier_rank,
        tier_conditions.condition_id,
        tier_conditions.match_group,
        tier_conditions.indicator,
        indicator_values.indicator_value,
        tier_conditions.operator,
        tier_conditions.threshold,
        case tier_conditions.operator
            when '>=' then indicator_values.indicator_value >= tier_conditions.threshold
            when '>' then indicator_values.indicator_value > tier_conditions.threshold
            when '<=' then indicator_values.indicator_value <= tier_conditions.threshold
            when '<' then indicator_values.indicator_value < tier_conditions.threshold
        end as is_met
    from tier_conditions
    inner join indicator_values
        on
            tier_conditions.policy_version_id = indicator_values.policy_version_id
            and tier_conditions.indicator = indicator_values.indicator

),

final as (

    select
        customer_period_id || '/' || tier || '/' || condition_id as grading_basis_id,
        customer_period_id,
        policy,
        policy_version,
        period_month,
        customer_key,
        tier,
        tier_rank,
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
