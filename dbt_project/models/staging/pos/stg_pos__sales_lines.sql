with

source as (

    select * from {{ source('pos', 'pos_sales_lines') }}

),

deduplicated as (

    -- a receipt line can only appear in one export; keep the latest load if a till re-exported it
    select distinct on (receipt_no, line_no) *
    from source
    order by receipt_no asc, line_no asc, _loaded_at desc, _source_file desc

),

final as (

    select
        receipt_no || '#' || line_no as sales_line_id,
        receipt_no as order_id,
        line_no,
        'store' as sales_channel,
        store_code,
        member_id,
        phone_key,
        sold_at as ordered_at,
        sku,
        coalesce(business_line, 'unknown') as business_line,
        coalesce(customization_level, 'standard') as customization_level,
        coalesce(customization_level, 'standard') in ('semi_custom', 'bespoke') as is_customised,
        quantity,
        amount,
        _source_file as source_file,
        _loaded_at as loaded_at
    from deduplicated

)

select * from final
