{#- P1 Art. 9: the last `regrade_window_months` months of a graded customer's behaviour against
    the same number of months before them, for policies with a quarterly re-grade. -#}

with

population as (

    select * from {{ ref('int_grading_population') }}

),

policy_settings as (

    select * from {{ ref('stg_policy__settings') }}

),

customer_monthly as (

    select * from {{ ref('int_customer_monthly') }}

),

regraded_customers as (

    select
        population.customer_period_id,
        population.policy_version_id,
        population.policy,
        population.policy_version,
        population.period_month,
        population.customer_key,
        population.grading_consent_id,
        policy_settings.regrade_window_months,
        (population.period_month - make_interval(months => policy_settings.regrade_window_months - 1))::date
            as recent_from,
        (population.period_month - make_interval(months => 2 * policy_settings.regrade_window_months - 1))::date
            as prior_from
    from population
    inner join policy_settings
        on population.policy_version_id = policy_settings.policy_version_id
    where population.is_graded and policy_settings.regrade_window_months is not null

),

window_sums as (

    select
        regraded_customers.customer_period_id,
        coalesce(sum(customer_monthly.spend) filter (
            where customer_monthly.activity_month >= regraded_customers.recent_from
        ), 0) as recent_spend,
        coalesce(sum(customer_monthly.spend) filter (
            where customer_monthly.activity_month < regraded_customers.recent_from
        ), 0) as prior_spend,
        coalesce(sum(customer_monthly.order_count) filter (
            where customer_monthly.activity_month >= regraded_customers.recent_from
        ), 0)::bigint as recent_orders,
        coalesce(sum(customer_monthly.order_count) filter (
            where customer_monthly.activity_month < regraded_customers.recent_from
        ), 0)::bigint as prior_orders,
        coalesce(sum(customer_monthly.special_orders) filter (
            where customer_monthly.activity_month >= regraded_customers.recent_from
        ), 0)::bigint as recent_special_orders,
        coalesce(sum(customer_monthly.special_orders) filter (
            where customer_monthly.activity_month < regraded_customers.recent_from
        ), 0)::bigint as prior_special_orders,
        -- Art. 9 "持续提升": in how many of the recent months the customer bought
        count(distinct customer_monthly.activity_month) filter (
            where customer_monthly.activity_month >= regraded_customers.recent_from and customer_monthly.order_count > 0
        ) as recent_active_months
    from regraded_customers
    left join customer_monthly
        -- only orders since the consent in force count (000 Art. 7)
        on
            regraded_customers.grading_consent_id = customer_monthly.grading_consent_id
            and customer_monthly.activity_month between regraded_customers.prior_from and regraded_customers.period_month
    group by regraded_customers.customer_period_id

),

final as (

    select
        regraded_customers.customer_period_id,
        regraded_customers.policy_version_id,
        regraded_customers.policy,
        regraded_customers.policy_version,
        regraded_customers.period_month,
        regraded_customers.customer_key,
        regraded_customers.regrade_window_months,
        regraded_customers.recent_from,
        window_sums.recent_spend,
        window_sums.prior_spend,
        window_sums.recent_orders,
        window_sums.prior_orders,
        window_sums.recent_special_orders,
        window_sums.prior_special_orders,
        window_sums.recent_active_months,
        -- growth needs a base: with nothing in the prior months there is no trend to speak of
        case
            when window_sums.prior_spend > 0 then round(window_sums.recent_spend / window_sums.prior_spend - 1, 4)
        end as spend_growth,
        case
            when window_sums.prior_orders > 0
                then round(window_sums.recent_orders::numeric / window_sums.prior_orders - 1, 4)
        end as order_growth,
        case
            when window_sums.prior_special_orders > 0
                then round(window_sums.recent_special_orders::numeric / window_sums.prior_special_orders - 1, 4)
        end as special_order_growth
    from regraded_customers
    inner join window_sums
        on regraded_customers.customer_period_id = window_sums.customer_period_id

)

select * from final
