with

orders as (

    -- unresolved orders (no member, no known phone) belong to nobody we can grade
    select * from {{ ref('int_orders') }}
    where customer_key is not null

),

grading_periods as (

    select * from {{ ref('int_grading_periods') }}

),

first_orders as (

    select
        customer_key,
        min(ordered_at)::date as first_order_date
    from orders
    group by customer_key

),

orders_in_window as (

    select
        grading_periods.grading_period_id,
        grading_periods.policy_version_id,
        grading_periods.policy,
        grading_periods.policy_version,
        grading_periods.period_month,
        grading_periods.period_end,
        grading_periods.big_ticket_order_min,
        orders.customer_key,
        orders.ordered_at,
        orders.net_amount,
        orders.customised_amount
    from grading_periods
    inner join orders
        on orders.ordered_at::date between grading_periods.window_start and grading_periods.period_end

),

aggregated as (

    select
        grading_period_id,
        policy_version_id,
        policy,
        policy_version,
        period_month,
        period_end,
        customer_key,
        sum(net_amount) as spend,
        count(*) filter (where net_amount > 0) as order_count,
        count(*) filter (where net_amount >= big_ticket_order_min) as big_ticket_orders,
        sum(customised_amount) as customised_spend,
        max(net_amount) as max_order_value,
        count(distinct date_trunc('month', ordered_at)) filter (where net_amount > 0) as active_months,
        max(ordered_at)::date as last_order_date
    from orders_in_window
    group by grading_period_id, policy_version_id, policy, policy_version, period_month, period_end, customer_key

),

final as (

    select
        aggregated.grading_period_id || '/' || aggregated.customer_key as customer_period_id,
        aggregated.grading_period_id,
        aggregated.policy_version_id,
        aggregated.policy,
        aggregated.policy_version,
        aggregated.period_month,
        aggregated.customer_key,
        round(aggregated.spend, 2) as spend,
        aggregated.order_count,
        aggregated.big_ticket_orders,
        round(coalesce(aggregated.big_ticket_orders::numeric / nullif(aggregated.order_count, 0), 0), 4)
        as big_ticket_share,
        round(coalesce(greatest(aggregated.customised_spend, 0) / nullif(greatest(aggregated.spend, 0), 0), 0), 4)
        as custom_share,
        round(aggregated.max_order_value, 2) as max_order_value,
        round(coalesce(aggregated.spend / nullif(aggregated.order_count, 0), 0), 2) as avg_order_value,
        aggregated.active_months,
        (
            extract(year from age(aggregated.period_end, first_orders.first_order_date)) * 12
            + extract(month from age(aggregated.period_end, first_orders.first_order_date))
        )::integer as tenure_months,
        aggregated.period_end - aggregated.last_order_date as days_since_last_order
    from aggregated
    inner join first_orders
        on aggregated.customer_key = first_orders.customer_key

)

select * from final
