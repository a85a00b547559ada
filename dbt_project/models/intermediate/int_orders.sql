with

order_lines as (

    select * from {{ ref('int_order_lines_unified') }}

),

final as (

    -- refunds are netted into the order they belong to, dated at the sale
    select
        order_id,
        member_id as customer_key,
        min(sales_channel) as sales_channel,
        min(ordered_at) filter (where amount > 0) as ordered_at,
        sum(amount) as net_amount,
        coalesce(sum(amount) filter (where is_customised), 0) as customised_amount,
        count(*) filter (where amount > 0) as line_count
    from order_lines
    where member_id is not null
    group by order_id, member_id
    having min(ordered_at) filter (where amount > 0) is not null

)

select * from final
