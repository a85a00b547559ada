{#- P1 Art. 9: which quarterly re-grade rules each graded customer's recent trend meets. The
    quarterly list applies a rule to customers whose current grade is the rule's `from_tier`. -#}

with

trends as (

    select * from {{ ref('int_customer_quarter_trends') }}

),

policy_conditions as (

    select * from {{ ref('int_policy_conditions') }}

),

trend_values as (

    select
        trends.customer_period_id,
        trends.policy_version_id,
        indicators.indicator,
        indicators.indicator_value
    from trends
    cross join lateral (
        values
        ('recent_spend', trends.recent_spend),
        ('prior_spend', trends.prior_spend),
        ('recent_orders', trends.recent_orders::numeric),
        ('prior_orders', trends.prior_orders::numeric),
        ('recent_special_orders', trends.recent_special_orders::numeric),
        ('prior_special_orders', trends.prior_special_orders::numeric),
        ('spend_growth', trends.spend_growth),
        ('order_growth', trends.order_growth),
        ('special_order_growth', trends.special_order_growth),
        ('recent_active_months', trends.recent_active_months::numeric)
    ) as indicators (indicator, indicator_value)

),

condition_checks as (

    {{ check_policy_conditions('regrade', 'policy_conditions', 'trend_values') }}

),

rule_checks as (

    select
        customer_period_id,
        rule,
        from_tier,
        to_tier,
        {{ rule_holds('is_met', 'match_group') }} as rule_holds
    from condition_checks
    group by customer_period_id, rule, from_tier, to_tier

),

final as (

    select
        rule_checks.customer_period_id || '/' || rule_checks.rule as regrade_signal_id,
        trends.customer_period_id,
        trends.policy,
        trends.policy_version,
        trends.period_month,
        trends.customer_key,
        rule_checks.rule,
        rule_checks.from_tier,
        rule_checks.to_tier,
        rule_checks.rule_holds,
        trends.regrade_window_months,
        trends.recent_from,
        trends.recent_spend,
        trends.prior_spend,
        trends.spend_growth,
        trends.recent_orders,
        trends.prior_orders,
        trends.order_growth,
        trends.recent_special_orders,
        trends.prior_special_orders,
        trends.special_order_growth,
        trends.recent_active_months,
        '{{ invocation_id }}' as dbt_invocation_id
    from rule_checks
    inner join trends
        on rule_checks.customer_period_id = trends.customer_period_id

)

select * from final
