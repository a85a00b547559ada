with

source as (

    select * from {{ source('shop', 'shop_orders') }}

),

final as (

    select
        order_id,
        member_id,
        phone_key,
        channel as sales_channel,
        status as order_status,
        ordered_at,
        updated_at as status_changed_at,
        _loaded_at as loaded_at
    from source

)

select * from final
