with

source as (

    select * from {{ source('policy', 'policy_settings') }}

),

final as (

    select
        policy || '@' || version as policy_version_id,
        policy,
        version as policy_version,
        max(case when setting = 'window_months' then value end)::integer as window_months,
        max(case when setting = 'big_ticket_order_min' then value end) as big_ticket_order_min
    from source
    group by policy, version

)

select * from final
