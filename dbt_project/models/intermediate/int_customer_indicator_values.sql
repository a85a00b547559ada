with

features as (

    select * from {{ ref('int_customer_period_features') }}

),

final as (

    -- long form, so a policy can name any indicator in its rules without new SQL
    select
        features.customer_period_id || '/' || indicators.indicator as indicator_value_id,
        features.customer_period_id,
        features.grading_period_id,
        features.policy_version_id,
        features.period_month,
        features.customer_key,
        indicators.indicator,
        indicators.indicator_value
    from features
    cross join lateral (
        values
        ('spend', features.spend),
        ('order_count', features.order_count::numeric),
        ('big_ticket_orders', features.big_ticket_orders::numeric),
        ('big_ticket_share', features.big_ticket_share),
        ('custom_share', features.custom_share),
        ('special_needs_share', features.special_needs_share),
        ('enterprise_share', features.enterprise_share),
        ('max_order_value', features.max_order_value),
        ('avg_order_value', features.avg_order_value),
        ('active_months', features.active_months::numeric),
        ('tenure_months', features.tenure_months::numeric),
        ('repurchase_rate', features.repurchase_rate),
        ('on_time_payment_share', features.on_time_payment_share),
        ('days_since_last_order', features.days_since_last_order::numeric)
    ) as indicators (indicator, indicator_value)

)

select * from final
