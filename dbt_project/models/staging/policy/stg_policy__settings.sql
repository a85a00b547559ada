with

source as (

    select * from {{ source('policy', 'policy_settings') }}

),

final as (

    select
        {{ policy_version_key() }} as policy_version_id,
        policy,
        version as policy_version,
        max(case when setting = 'window_months' then value end)::integer as window_months,
        max(case when setting = 'big_ticket_order_min' then value end) as big_ticket_order_min,
        max(case when setting = 'enterprise_label_min_share' then value end) as enterprise_label_min_share,
        max(case when setting = 'special_needs_label_min_share' then value end) as special_needs_label_min_share,
        max(case when setting = 'long_term_label_min_active_months' then value end) as long_term_label_min_active_months,
        max(case when setting = 'long_term_label_min_tenure_months' then value end) as long_term_label_min_tenure_months,
        max(case when setting = 'regrade_window_months' then value end)::integer as regrade_window_months
    from source
    group by policy, version

)

select * from final
