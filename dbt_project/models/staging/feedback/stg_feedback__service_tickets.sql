with

source as (

    select * from {{ source('feedback', 'service_tickets') }}

),

deduplicated as (

    select distinct on (ticket_id) *
    from source
    order by ticket_id asc, _loaded_at desc

),

final as (

    select
        ticket_id,
        member_id,
        order_ref,
        category as ticket_category,
        opened_at,
        closed_at,
        satisfaction,
        round(extract(epoch from closed_at - opened_at) / 3600.0, 1) as hours_to_close
    from deduplicated

)

select * from final
