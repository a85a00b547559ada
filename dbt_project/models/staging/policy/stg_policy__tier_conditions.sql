with

source as (

    select * from {{ source('policy', 'policy_tier_conditions') }}

),

final as (

    select
        {{ policy_version_key() }} || '/' || tier || '/' || condition_id as tier_condition_id,
        {{ policy_version_key() }} as policy_version_id,
        policy,
        version as policy_version,
        tier,
        tier_rank,
        tier_label,
        condition_id,
        match_group,
        indicator,
        operator,
        threshold
    from source

)

select * from final
