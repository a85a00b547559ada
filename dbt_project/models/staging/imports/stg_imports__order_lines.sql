with

source as (

    select * from {{ source('imports', 'imported_order_lines') }}

),

deduplicated as (

    select distinct on (order_id, line_no) *
    from source
    order by order_id asc, line_no asc, _loaded_at desc

),

final as (

    select
        'import:' || order_id || '#' || line_no as order_line_id,
        'import:' || order_id as order_id,
        line_no,
        channel as sales_channel,
        store_code,
        member_id,
        phone_key,
        ordered_at,
        sku,
        coalesce(business_line, 'unknown') as business_line,
        coalesce(customization_level, 'standard') as customization_level,
        coalesce(customization_level in ('semi_custom', 'bespoke'), false) as is_customised,
        quantity,
        amount,
        _loaded_at as loaded_at
    from deduplicated

)

select * from final
