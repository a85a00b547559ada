with

source as (

    select * from {{ source('policy', 'policy_regrade_conditions') }}

),

final as (

    select
        {{ policy_version_key() }} || '/' || rule || '/' || condition_id as regrade_condition_id,
        {{ policy_version_key() }} as policy_version_id,
        policy,
        version as policy_version,
        rule,
        from_tier,
        to_tier,
        condition_id,
        match_group,
        indicator,
        operator,
        threshold
    from source

)

select * from final
