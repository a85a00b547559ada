with

order_lines as (

    select * from {{ ref('int_order_lines_unified') }}

),

phone_directory as (

    select * from {{ ref('int_phone_directory') }}

),

business_lines as (

    select * from {{ ref('ref_business_lines') }}

),

order_heads as (

    -- refunds are netted into the order they belong to, dated at the sale; an order whose lines
    -- are all zero-amount is kept, flagged, so the customer gets an exclusion row (docs/POLICIES.md)
    select
        order_lines.order_id,
        min(order_lines.member_id) as member_id,
        min(order_lines.phone_key) as phone_key,
        min(order_lines.sales_channel) as sales_channel,
        coalesce(
            min(order_lines.ordered_at) filter (where order_lines.amount > 0), min(order_lines.ordered_at)
        ) as ordered_at,
        bool_and(order_lines.amount = 0) as is_zero_amount,
        sum(order_lines.amount) as net_amount,
        coalesce(sum(order_lines.amount) filter (where order_lines.is_customised), 0) as customised_amount,
        coalesce(
            sum(order_lines.amount) filter (where business_lines.consumption_attribute = 'enterprise'), 0
        ) as enterprise_amount,
        count(*) filter (where order_lines.amount > 0) as line_count,
        max(order_lines.loaded_at) as loaded_at
    from order_lines
    left join business_lines
        on order_lines.business_line = business_lines.business_line
    group by order_lines.order_id
    -- a refund whose sale is not loaded has no sale to be netted into and no date of its own
    having bool_or(order_lines.amount > 0) or bool_and(order_lines.amount = 0)

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
        order_heads.is_zero_amount,
        order_heads.net_amount,
        order_heads.customised_amount,
        order_heads.enterprise_amount,
        order_heads.line_count,
        order_heads.loaded_at
    from order_heads
    left join phone_matches
        on order_heads.order_id = phone_matches.order_id

)

select * from final
