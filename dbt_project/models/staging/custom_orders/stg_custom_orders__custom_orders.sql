with

source as (

    select * from {{ source('custom_orders', 'custom_orders') }}

),

deduplicated as (

    select distinct on (custom_order_id) *
    from source
    order by custom_order_id asc, _loaded_at desc

),

final as (

    select
        custom_order_id,
        order_ref,
        member_id,
        business_line,
        customization_level,
        coalesce(rare_flowers, false) as has_rare_flowers,
        coalesce(imported_flowers, false) as has_imported_flowers,
        coalesce(rare_flowers, false) or coalesce(imported_flowers, false) as needs_special_flowers,
        event_date,
        _loaded_at as loaded_at
    from deduplicated

)

select * from final
