with

source as (

    select * from {{ source('shop', 'shop_order_lines') }}

),

final as (

    select
        order_id || '#' || line_no as order_line_id,
        order_id,
        line_no,
        sku,
        coalesce(business_line, 'unknown') as business_line,
        coalesce(customization_level, 'standard') as customization_level,
        coalesce(customization_level, 'standard') in ('semi_custom', 'bespoke') as is_customised,
        quantity,
        amount,
        _loaded_at as loaded_at
    from source

)

select * from final
