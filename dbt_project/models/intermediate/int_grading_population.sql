{#- Who a grading period lists: every customer with an order in the window, and every member whose
    grading consent is in force at the period end (000 Art. 7) whether they bought or not. A
    consenting customer without a purchase in the window since their consent is graded as lapsed
    (the policy's lapsed_tier); the others with an order are excluded with the reason. -#}

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

grading_consents as (

    select * from {{ ref('int_grading_consents') }}

),

member_at_period_end as (

    -- the CRM version current at the period end (customer type; whether the member existed) and
    -- the run of grading consent it belongs to, if any (Art. 7)
    select
        grading_periods.grading_period_id,
        member_versions.member_id as customer_key,
        member_versions.customer_type,
        grading_consents.grading_consent_id,
        grading_consents.consent_from
    from grading_periods
    inner join member_versions
        on
            member_versions.valid_from < grading_periods.period_end + interval '1 day'
            and (
                member_versions.valid_to is null
                or member_versions.valid_to >= grading_periods.period_end + interval '1 day'
            )
    left join grading_consents
        on
            member_versions.member_id = grading_consents.member_id
            and member_versions.has_grading_consent
            and member_versions.valid_from >= grading_consents.run_from
            and (grading_consents.consent_to is null or member_versions.valid_from < grading_consents.consent_to)

),

consent_at_period_end as (

    select * from member_at_period_end
    where grading_consent_id is not null

),

window_orders as (

    -- everyone with an order in the window is a candidate; unresolved orders belong to nobody
    select
        grading_periods.grading_period_id,
        orders.customer_key
    from grading_periods
    inner join orders
        on orders.ordered_at::date between grading_periods.window_start and grading_periods.period_end
    where orders.customer_key is not null
    group by grading_periods.grading_period_id, orders.customer_key

),

consented_purchases as (

    -- a purchase counts only from the consent in force at the period end on; zero-amount orders
    -- are no purchase (docs/POLICIES.md)
    select
        consent_at_period_end.grading_period_id,
        consent_at_period_end.customer_key
    from consent_at_period_end
    inner join grading_periods
        on consent_at_period_end.grading_period_id = grading_periods.grading_period_id
    inner join orders
        on
            consent_at_period_end.customer_key = orders.customer_key
            and orders.ordered_at::date between grading_periods.window_start and grading_periods.period_end
            and consent_at_period_end.consent_from <= orders.ordered_at
    where not orders.is_zero_amount
    group by consent_at_period_end.grading_period_id, consent_at_period_end.customer_key

),

candidates as (

    select
        grading_period_id,
        customer_key
    from window_orders
    union
    select
        grading_period_id,
        customer_key
    from consent_at_period_end

),

final as (

    select
        candidates.grading_period_id || '/' || candidates.customer_key as customer_period_id,
        candidates.grading_period_id,
        grading_periods.policy_version_id,
        grading_periods.policy,
        grading_periods.policy_version,
        grading_periods.period_month,
        grading_periods.period_end,
        candidates.customer_key,
        member_at_period_end.customer_type,
        member_at_period_end.grading_consent_id,
        member_at_period_end.consent_from,
        member_at_period_end.grading_consent_id is not null as is_graded,
        member_at_period_end.grading_consent_id is not null and consented_purchases.customer_key is null
            as is_lapsed,
        case
            when member_at_period_end.customer_key is null then 'no_consent_record'
            when member_at_period_end.grading_consent_id is null then 'no_grading_consent'
        end as exclusion_reason
    from candidates
    inner join grading_periods
        on candidates.grading_period_id = grading_periods.grading_period_id
    left join member_at_period_end
        on
            candidates.grading_period_id = member_at_period_end.grading_period_id
            and candidates.customer_key = member_at_period_end.customer_key
    left join consented_purchases
        on
            candidates.grading_period_id = consented_purchases.grading_period_id
            and candidates.customer_key = consented_purchases.customer_key

)

select * from final
