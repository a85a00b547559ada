with

source as (

    select * from {{ source('payments', 'payments') }}

),

deduplicated as (

    select distinct on (payment_id) *
    from source
    order by payment_id asc, _loaded_at desc

),

final as (

    select
        payment_id,
        order_ref,
        member_id,
        amount,
        due_date,
        paid_at,
        method as payment_method,
        greatest(paid_at::date - due_date, 0) as days_late
    from deduplicated

)

select * from final
