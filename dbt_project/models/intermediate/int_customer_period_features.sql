with

population as (

    select * from {{ ref('int_grading_population') }}

),

orders as (

    -- zero-amount orders count in no indicator (docs/POLICIES.md, "Zero-amount orders")
    select * from {{ ref('int_orders') }}
    where not is_zero_amount

),

monthly as (

    select * from {{ ref('int_customer_monthly') }}

),

grading_periods as (

    select * from {{ ref('int_grading_periods') }}

),

member_versions as (

    select * from {{ ref('stg_crm__member_versions') }}

),

payments as (

    select * from {{ ref('stg_payments__payments') }}

),

graded as (

    select
        population.*,
        grading_periods.window_start,
        grading_periods.window_months,
        grading_periods.big_ticket_order_min
    from population
    inner join grading_periods
        on population.grading_period_id = grading_periods.grading_period_id
    -- a lapsed customer has no purchase to compute features from: fct_customer_tiers lists them
    where population.is_graded and not population.is_lapsed

),

registered as (

    select
        member_id as customer_key,
        min(valid_from) as registered_at
    from member_versions
    group by member_id

),

first_consented_purchase as (

    -- orders before the consent in force do not count (000 Art. 7), not even as the first purchase
    select
        graded.customer_period_id,
        min(monthly.first_ordered_at) as first_ordered_at
    from graded
    inner join monthly
        on
            graded.grading_consent_id = monthly.grading_consent_id
            and graded.period_end >= monthly.activity_month
    group by graded.customer_period_id

),

member_since as (

    -- the relationship starts at registration or at the first purchase, whichever came first
    select
        graded.customer_period_id,
        least(registered.registered_at, first_consented_purchase.first_ordered_at)::date as member_since
    from graded
    left join registered
        on graded.customer_key = registered.customer_key
    left join first_consented_purchase
        on graded.customer_period_id = first_consented_purchase.customer_period_id

),

monthly_in_window as (

    select
        graded.customer_period_id,
        graded.big_ticket_order_min,
        monthly.*
    from graded
    inner join monthly
        on
            graded.grading_consent_id = monthly.grading_consent_id
            and monthly.activity_month between date_trunc('month', graded.window_start) and graded.period_end

),

order_aggregates as (

    select
        customer_period_id,
        sum(spend) as spend,
        sum(order_count)::bigint as order_count,
        sum(
            (
                select count(*) from unnest(positive_order_values) as order_value
                where order_value >= big_ticket_order_min
            )
        )::bigint as big_ticket_orders,
        sum(special_orders)::bigint as special_orders,
        sum(customised_spend) as customised_spend,
        sum(enterprise_spend) as enterprise_spend,
        max(max_order_value) as max_order_value,
        count(*) filter (where order_count > 0) as active_months,
        max(last_ordered_at)::date as last_order_date
    from monthly_in_window
    group by customer_period_id

),

payment_aggregates as (

    -- credit status: payments falling due in the window, paid by their due date or not
    select
        graded.customer_period_id,
        count(*) as payments_due,
        count(*) filter (where payments.paid_at is not null and payments.paid_at::date <= payments.due_date)
            as payments_on_time
    from graded
    inner join orders
        on
            graded.customer_key = orders.customer_key
            and graded.consent_from <= orders.ordered_at
    inner join payments
        on orders.order_id = payments.order_ref
    where payments.due_date between graded.window_start and graded.period_end
    group by graded.customer_period_id

),

features as (

    select
        graded.customer_period_id,
        graded.grading_period_id,
        graded.policy_version_id,
        graded.policy,
        graded.policy_version,
        graded.period_month,
        graded.customer_key,
        graded.customer_type,
        round(order_aggregates.spend, 2) as spend,
        order_aggregates.order_count,
        order_aggregates.big_ticket_orders,
        round(coalesce(order_aggregates.big_ticket_orders::numeric / nullif(order_aggregates.order_count, 0), 0), 4)
            as big_ticket_share,
        round(
            coalesce(greatest(order_aggregates.customised_spend, 0) / nullif(greatest(order_aggregates.spend, 0), 0), 0),
            4
        ) as custom_share,
        round(coalesce(order_aggregates.special_orders::numeric / nullif(order_aggregates.order_count, 0), 0), 4)
            as special_needs_share,
        round(
            coalesce(greatest(order_aggregates.enterprise_spend, 0) / nullif(greatest(order_aggregates.spend, 0), 0), 0),
            4
        ) as enterprise_share,
        round(order_aggregates.max_order_value, 2) as max_order_value,
        round(coalesce(order_aggregates.spend / nullif(order_aggregates.order_count, 0), 0), 2) as avg_order_value,
        order_aggregates.active_months,
        (
            extract(year from age(graded.period_end, member_since.member_since)) * 12
            + extract(month from age(graded.period_end, member_since.member_since))
        )::integer as tenure_months,
        graded.period_end - order_aggregates.last_order_date as days_since_last_order,
        coalesce(payment_aggregates.payments_due, 0) as payments_due,
        round(
            coalesce(payment_aggregates.payments_on_time::numeric / nullif(payment_aggregates.payments_due, 0), 1), 4
        ) as on_time_payment_share,
        graded.window_months
    from graded
    inner join order_aggregates
        on graded.customer_period_id = order_aggregates.customer_period_id
    inner join member_since
        on graded.customer_period_id = member_since.customer_period_id
    left join payment_aggregates
        on graded.customer_period_id = payment_aggregates.customer_period_id

),

final as (

    select
        features.*,
        -- share of the window's months (since the relationship began) with a purchase
        round(
            least(features.active_months::numeric / least(features.window_months, features.tenure_months + 1), 1), 4
        ) as repurchase_rate
    from features

)

select * from final
