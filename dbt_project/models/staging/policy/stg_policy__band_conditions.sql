with

source as (

    select * from {{ source('policy', 'policy_band_conditions') }}

),

final as (

    select
        policy || '@' || version || '/' || score || '/' || band || '/' || condition_id as band_condition_id,
        policy || '@' || version as policy_version_id,
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
