{{
    config(
        materialized='incremental',
        unique_key='activity_month',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
    )
}}
{#- Orders count only inside a run of grading consent (int_grading_consents, 000 Art. 7): each
    row is one customer, month and consent run, and orders outside every run are left out.
    Each run replaces whole months: those whose inputs were loaded since the last run (a late
    refund, a re-exported till file, a custom-order detail), every month with phone-resolved
    orders when the CRM changed (an ownership change can move an order to another customer),
    every month from the earliest change of consent a new CRM version may bring, and the last
    `monthly_lookback_months` months. `--full-refresh` rebuilds all history. -#}

with

orders as (

    select * from {{ ref('int_orders') }}

),

custom_orders as (

    select * from {{ ref('stg_custom_orders__custom_orders') }}

),

member_versions as (

    select * from {{ ref('stg_crm__member_versions') }}

),

grading_consents as (

    select * from {{ ref('int_grading_consents') }}

),

special_orders as (

    select
        order_ref as order_id,
        max(loaded_at) as loaded_at
    from custom_orders
    where needs_special_flowers or customization_level = 'bespoke'
    group by order_ref

),

dated_orders as (

    select
        orders.*,
        grading_consents.grading_consent_id,
        date_trunc('month', orders.ordered_at)::date as activity_month,
        special_orders.order_id is not null as is_special,
        greatest(orders.loaded_at, special_orders.loaded_at) as source_loaded_at
    from orders
    inner join grading_consents
        on
            orders.customer_key = grading_consents.member_id
            and orders.ordered_at >= grading_consents.consent_from
            and (grading_consents.consent_to is null or orders.ordered_at < grading_consents.consent_to)
    left join special_orders
        on orders.order_id = special_orders.order_id
    -- zero-amount orders count in no indicator (docs/POLICIES.md, "Zero-amount orders")
    where orders.customer_key is not null and not orders.is_zero_amount

),

{% if is_incremental() %}

last_run as (

    select
        max(source_loaded_at) as loaded_until,
        max(activity_month) as latest_month
    from {{ this }}

),

months_to_rebuild as (

    select dated_orders.activity_month
    from dated_orders
    cross join last_run
    where dated_orders.source_loaded_at > last_run.loaded_until
    union
    select dated_orders.activity_month
    from dated_orders
    cross join last_run
    where
        dated_orders.identity_rule like 'phone%'
        and exists (
            select 1 from member_versions
            where member_versions.loaded_at > last_run.loaded_until
        )
    union
    -- a new CRM version may start or end a run of consent from its own time (or its consent time)
    select
        date_trunc('month', least(member_versions.valid_from, member_versions.grading_consent_at))::date
            as activity_month
    from member_versions
    cross join last_run
    where member_versions.loaded_at > last_run.loaded_until
    union
    select
        (
            last_run.latest_month - (interval '1 month' * {{ var('monthly_lookback_months', 2) }})
        )::date as activity_month
    from last_run

),

{% endif %}

final as (

    select
        dated_orders.customer_key || '/' || to_char(dated_orders.activity_month, 'YYYY-MM')
        || '/' || dated_orders.grading_consent_id as customer_month_id,
        dated_orders.customer_key,
        dated_orders.activity_month,
        dated_orders.grading_consent_id,
        sum(dated_orders.net_amount) as spend,
        count(*) filter (where dated_orders.net_amount > 0) as order_count,
        count(*) filter (where dated_orders.net_amount > 0 and dated_orders.is_special) as special_orders,
        sum(dated_orders.customised_amount) as customised_spend,
        sum(dated_orders.enterprise_amount) as enterprise_spend,
        max(dated_orders.net_amount) as max_order_value,
        min(dated_orders.ordered_at) as first_ordered_at,
        max(dated_orders.ordered_at) as last_ordered_at,
        -- kept per order so each policy can count big-ticket orders against its own threshold
        array_agg(dated_orders.net_amount order by dated_orders.order_id) filter (
            where dated_orders.net_amount > 0
        ) as positive_order_values,
        max(dated_orders.source_loaded_at) as source_loaded_at
    from dated_orders
    {% if is_incremental() %}
    -- an empty table (first run after a failure) rebuilds everything
    where
        dated_orders.activity_month
        >= coalesce((select min(months_to_rebuild.activity_month) from months_to_rebuild), '1900-01-01'::date)
    {% endif %}
    group by dated_orders.customer_key, dated_orders.activity_month, dated_orders.grading_consent_id

)

select * from final
