with

member_versions as (

    select * from {{ ref('stg_crm__member_versions') }}

),

phone_periods as (

    -- consecutive versions with the same phone form one period of ownership
    select
        member_id,
        phone_key,
        valid_from,
        valid_to,
        -- bracketed only because sqlfluff cannot parse a bare IS DISTINCT FROM (sqlfluff issue 3284)
        (phone_key is distinct from lag(phone_key) over (partition by member_id order by valid_from)) as starts_period
    from member_versions
    where phone_key is not null

),

numbered as (

    select
        *,
        sum(case when starts_period then 1 else 0 end) over (partition by member_id order by valid_from) as period_number
    from phone_periods

),

final as (

    select
        phone_key || '/' || member_id || '/' || period_number as phone_ownership_id,
        phone_key,
        member_id,
        min(valid_from) as owned_from,
        -- null while the member still has the number
        case when bool_or(valid_to is null) then null else max(valid_to) end as owned_to
    from numbered
    group by phone_key, member_id, period_number

)

select * from final
