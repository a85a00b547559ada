with

features as (

    select * from {{ ref('int_customer_period_features') }}

),

final as (

    select
        customer_period_id,
        policy,
        policy_version,
        period_month,
        customer_key,
        customer_type,
        spend,
        order_count,
        big_ticket_orders,
        big_ticket_share,
        custom_share,
        special_needs_share,
        enterprise_share,
        max_order_value,
        avg_order_value,
        active_months,
        tenure_months,
        repurchase_rate,
        payments_due,
        on_time_payment_share,
        days_since_last_order
    from features

)

select * from final
