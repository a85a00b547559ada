with

source as (

    select * from {{ source('crm', 'crm_members') }}

),

deduplicated as (

    -- the same version may arrive in two exports; keep the latest load
    select distinct on (member_id, updated_at) *
    from source
    order by member_id asc, updated_at asc, _loaded_at desc

),

final as (

    select
        member_id || '@' || to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS') as member_version_id,
        member_id,
        phone_key,
        customer_type,
        grading_consent as has_grading_consent,
        grading_consent_at,
        coalesce(marketing_consent, false) as has_marketing_consent,
        updated_at as valid_from,
        lead(updated_at) over (partition by member_id order by updated_at) as valid_to,
        _loaded_at as loaded_at
    from deduplicated

)

select * from final
