with

store_lines as (

    select * from {{ ref('stg_pos__sales_lines') }}

),

online_orders as (

    select * from {{ ref('stg_shop__orders') }}

),

online_lines as (

    select * from {{ ref('stg_shop__order_lines') }}

),

imported_lines as (

    select * from {{ ref('stg_imports__order_lines') }}

),

store_unified as (

    select
        sales_line_id as order_line_id,
        'store:' || order_id as order_id,
        'store' as sales_channel,
        member_id,
        phone_key,
        ordered_at,
        business_line,
        customization_level,
        is_customised,
        amount,
        loaded_at
    from store_lines

),

online_sold as (

    select
        online_lines.order_line_id,
        'online:' || online_lines.order_id as order_id,
        online_orders.sales_channel,
        online_orders.member_id,
        online_orders.phone_key,
        online_orders.ordered_at,
        online_lines.business_line,
        online_lines.customization_level,
        online_lines.is_customised,
        online_lines.amount,
        greatest(online_lines.loaded_at, online_orders.loaded_at) as loaded_at
    from online_lines
    inner join online_orders
        on online_lines.order_id = online_orders.order_id
    -- a cancelled order never happened as far as spend is concerned
    where online_orders.order_status in ('completed', 'refunded')

),

online_refunded as (

    -- the shop records a refund as a status; turn it into negative lines like the tills do
    select
        online_sold.order_line_id || '#refund' as order_line_id,
        online_sold.order_id,
        online_sold.sales_channel,
        online_sold.member_id,
        online_sold.phone_key,
        online_orders.status_changed_at as ordered_at,
        online_sold.business_line,
        online_sold.customization_level,
        online_sold.is_customised,
        -online_sold.amount as amount,
        online_sold.loaded_at
    from online_sold
    inner join online_orders
        on online_sold.order_id = 'online:' || online_orders.order_id
    where online_orders.order_status = 'refunded'

),

imported_unified as (

    select
        order_line_id,
        order_id,
        sales_channel,
        member_id,
        phone_key,
        ordered_at,
        business_line,
        customization_level,
        is_customised,
        amount,
        loaded_at
    from imported_lines

),

final as (

    select * from store_unified
    union all
    select * from online_sold
    union all
    select * from online_refunded
    union all
    select * from imported_unified

)

select * from final
