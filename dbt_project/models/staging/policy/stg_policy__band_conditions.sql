with

source as (

    select * from {{ source('policy', 'policy_band_conditions') }}

),

final as (

    select
        {{ policy_version_key() }} || '/' || score || '/' || band || '/' || condition_id as band_condition_id,
        {{ policy_version_key() }} as policy_version_id,
        score,
        band,
        condition_id,
        match_group,
        indicator,
        operator,
        threshold
    from source

)

select * from final
