with

orders as (

    select * from {{ ref('int_orders') }}

),

grading_periods as (

    select * from {{ ref('int_grading_periods') }}

),

member_versions as (

    select * from {{ ref('stg_crm__member_versions') }}

),

active_customers as (

    -- everyone with an order in the window is a candidate; unresolved orders belong to nobody.
    -- Only a customer with a positive-amount order is graded: zero-amount orders count in no
    -- indicator, so a customer with nothing else is listed as excluded (docs/POLICIES.md).
    select
        grading_periods.grading_period_id,
        grading_periods.policy_version_id,
        grading_periods.policy,
        grading_periods.policy_version,
        grading_periods.period_month,
        grading_periods.period_end,
        orders.customer_key,
        bool_or(not orders.is_zero_amount) as has_positive_order
    from grading_periods
    inner join orders
        on orders.ordered_at::date between grading_periods.window_start and grading_periods.period_end
    where orders.customer_key is not null
    group by
        grading_periods.grading_period_id,
        grading_periods.policy_version_id,
        grading_periods.policy,
        grading_periods.policy_version,
        grading_periods.period_month,
        grading_periods.period_end,
        orders.customer_key

),

member_at_period_end as (

    -- Art. 7: only data the customer authorised for grading, as recorded at the period end
    select
        active_customers.grading_period_id,
        active_customers.customer_key,
        member_versions.customer_type,
        member_versions.has_grading_consent
    from active_customers
    inner join member_versions
        on
            active_customers.customer_key = member_versions.member_id
            and member_versions.valid_from < active_customers.period_end + interval '1 day'
            and (
                member_versions.valid_to is null
                or member_versions.valid_to >= active_customers.period_end + interval '1 day'
            )

),

final as (

    select
        active_customers.grading_period_id || '/' || active_customers.customer_key as customer_period_id,
        active_customers.grading_period_id,
        active_customers.policy_version_id,
        active_customers.policy,
        active_customers.policy_version,
        active_customers.period_month,
        active_customers.period_end,
        active_customers.customer_key,
        member_at_period_end.customer_type,
        coalesce(member_at_period_end.has_grading_consent, false) and active_customers.has_positive_order as is_graded,
        case
            when member_at_period_end.customer_key is null then 'no_consent_record'
            when not member_at_period_end.has_grading_consent then 'no_grading_consent'
            when not active_customers.has_positive_order then 'no_positive_orders'
        end as exclusion_reason
    from active_customers
    left join member_at_period_end
        on
            active_customers.grading_period_id = member_at_period_end.grading_period_id
            and active_customers.customer_key = member_at_period_end.customer_key

)

select * from final
