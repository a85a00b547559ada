with

order_lines as (

    select * from {{ ref('int_order_lines_unified') }}

),

phone_directory as (

    select * from {{ ref('int_phone_directory') }}

),

order_heads as (

    -- refunds are netted into the order they belong to, dated at the sale
    select
        order_id,
        min(member_id) as member_id,
        min(phone_key) as phone_key,
        min(sales_channel) as sales_channel,
        min(ordered_at) filter (where amount > 0) as ordered_at,
        sum(amount) as net_amount,
        coalesce(sum(amount) filter (where is_customised), 0) as customised_amount,
        count(*) filter (where amount > 0) as line_count
    from order_lines
    group by order_id
    having min(ordered_at) filter (where amount > 0) is not null

),

phone_matches as (

    -- identity rule 2: no member card, but a phone number some member owned
    select distinct on (order_heads.order_id)
        order_heads.order_id,
        phone_directory.member_id,
        case
            when
                order_heads.ordered_at >= phone_directory.owned_from
                and (phone_directory.owned_to is null or order_heads.ordered_at < phone_directory.owned_to)
                then 'phone_owner_at_order_time'
            else 'phone_nearest_owner'
        end as identity_rule
    from order_heads
    inner join phone_directory
        on order_heads.phone_key = phone_directory.phone_key
    where order_heads.member_id is null
    order by
        order_heads.order_id asc,
        -- the owner at the time of the order first, else the owner closest in time
        (
            order_heads.ordered_at >= phone_directory.owned_from
            and (phone_directory.owned_to is null or order_heads.ordered_at < phone_directory.owned_to)
        ) desc,
        abs(extract(epoch from order_heads.ordered_at - phone_directory.owned_from)) asc

),

final as (

    select
        order_heads.order_id,
        coalesce(order_heads.member_id, phone_matches.member_id) as customer_key,
        case
            when order_heads.member_id is not null then 'member_id'
            when phone_matches.member_id is not null then phone_matches.identity_rule
            else 'unresolved'
        end as identity_rule,
        order_heads.sales_channel,
        order_heads.ordered_at,
        order_heads.net_amount,
        order_heads.customised_amount,
        order_heads.line_count
    from order_heads
    left join phone_matches
        on order_heads.order_id = phone_matches.order_id

)

select * from final
