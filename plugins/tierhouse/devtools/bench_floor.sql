-- The bare-SQL floor of `make bench`: P1's (highend_flower v1) features and tiers for one month in
-- one statement straight from the raw tables, written by hand, sharing nothing with the dbt
-- project. It unifies till lines and online orders as the staging models do (latest load of a
-- re-exported till line, cancelled online orders dropped, a refunded online order as negative
-- lines dated at the refund), nets refunds into their order, resolves walk-ins by phone owner and
-- grades consenting customers on the 12 months up to the period end. The thresholds are P1 v1's
-- (policies/highend_flower/v1.yml): the bench compares these tiers with the project's and the
-- pandas reference's, so a policy change shows up there as mismatches.
-- Parameters: %(window_start)s, %(period_end)s (dates), %(big_ticket)s (numeric), %(no_tier)s.
with
lines as (
    select
        'store:' || p.receipt_no as order_id,
        p.member_id,
        p.phone_key,
        p.sold_at as ordered_at,
        coalesce(p.customization_level, 'standard') in ('semi_custom', 'bespoke') as is_customised,
        p.amount
    from (
        select distinct on (receipt_no, line_no) *
        from raw.pos_sales_lines
        order by receipt_no asc, line_no asc, _loaded_at desc, _source_file desc
    ) as p
    union all
    select
        'online:' || o.order_id,
        o.member_id,
        o.phone_key,
        r.at,
        coalesce(l.customization_level, 'standard') in ('semi_custom', 'bespoke'),
        l.amount * r.sign
    from raw.shop_order_lines as l
    inner join raw.shop_orders as o on l.order_id = o.order_id
    cross join lateral (
        select o.ordered_at as at, 1 as sign
        union all
        select o.updated_at, -1 where o.status = 'refunded'
    ) as r
    where o.status in ('completed', 'refunded')
    union all
    select
        'import:' || i.order_id,
        i.member_id,
        i.phone_key,
        i.ordered_at,
        coalesce(i.customization_level in ('semi_custom', 'bespoke'), false),
        i.amount
    from (
        select distinct on (order_id, line_no) *
        from raw.imported_order_lines
        order by order_id asc, line_no asc, _loaded_at desc
    ) as i
),

orders as (
    select
        order_id,
        min(member_id) as member_id,
        min(phone_key) as phone_key,
        coalesce(min(ordered_at) filter (where amount > 0), min(ordered_at)) as ordered_at,
        bool_and(amount = 0) as is_zero_amount,
        sum(amount) as net,
        coalesce(sum(amount) filter (where is_customised), 0) as customised
    from lines
    group by order_id
    having bool_or(amount > 0) or bool_and(amount = 0)
),

versions as (
    select
        member_id,
        phone_key,
        grading_consent,
        updated_at as valid_from,
        lead(updated_at) over (partition by member_id order by updated_at) as valid_to
    from (
        select distinct on (member_id, updated_at) *
        from raw.crm_members
        order by member_id asc, updated_at asc, _loaded_at desc
    ) as c
),

phone_owners as (
    select
        phone_key,
        member_id,
        min(valid_from) as owned_from,
        case when bool_or(valid_to is null) then null else max(valid_to) end as owned_to
    from (
        select
            *,
            count(*) filter (where changed) over (partition by member_id order by valid_from) as run
        from (
            select
                *,
                phone_key is distinct from lag(phone_key) over (partition by member_id order by valid_from) as changed
            from versions
            where phone_key is not null
        ) as v
    ) as runs
    group by phone_key, member_id, run
),

by_phone as (
    select distinct on (o.order_id)
        o.order_id,
        p.member_id
    from orders as o
    inner join phone_owners as p on o.phone_key = p.phone_key
    where o.member_id is null
    order by
        o.order_id asc,
        (o.ordered_at >= p.owned_from and (p.owned_to is null or o.ordered_at < p.owned_to)) desc,
        abs(extract(epoch from o.ordered_at - p.owned_from)) asc
),

resolved as (
    select
        coalesce(o.member_id, b.member_id) as customer_key,
        o.ordered_at,
        o.is_zero_amount,
        o.net,
        o.customised
    from orders as o
    left join by_phone as b on o.order_id = b.order_id
    where coalesce(o.member_id, b.member_id) is not null
),

member_since as (
    select
        customer_key,
        min(started_at)::date as since
    from (
        select customer_key, ordered_at as started_at from resolved where not is_zero_amount
        union all
        select member_id, valid_from from versions
    ) as starts
    group by customer_key
),

features as (
    select
        r.customer_key,
        round(sum(r.net), 2) as spend,
        count(*) filter (where r.net > 0) as order_count,
        round(
            coalesce(
                (count(*) filter (where r.net > 0 and r.net >= %(big_ticket)s))::numeric
                / nullif(count(*) filter (where r.net > 0), 0),
                0
            ),
            4
        ) as big_ticket_share,
        round(coalesce(greatest(sum(r.customised), 0) / nullif(greatest(sum(r.net), 0), 0), 0), 4) as custom_share,
        round(max(r.net), 2) as max_order_value
    from resolved as r
    where not r.is_zero_amount and r.ordered_at::date between %(window_start)s and %(period_end)s
    group by r.customer_key
),

graded as (
    select
        f.*,
        (
            extract(year from age(%(period_end)s::date, s.since)) * 12 + extract(month from age(%(period_end)s::date, s.since))
        )::integer as tenure_months
    from features as f
    inner join member_since as s on f.customer_key = s.customer_key
    inner join versions as v
        on
            f.customer_key = v.member_id
            and v.valid_from < %(period_end)s::date + 1
            and (v.valid_to is null or v.valid_to >= %(period_end)s::date + 1)
    where v.grading_consent
)

select
    customer_key,
    case
        when
            spend >= 100000 and order_count >= 12 and tenure_months >= 24 and big_ticket_share >= 0.4
            and custom_share >= 0.5
            then 'top'
        when spend >= 30000 and order_count >= 6 and custom_share >= 0.3 then 'high'
        when order_count >= 2 and (spend >= 20000 or max_order_value >= 10000 or custom_share >= 0.6) then 'potential'
        else %(no_tier)s
    end as tier
from graded
