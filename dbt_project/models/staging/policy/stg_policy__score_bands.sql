with

source as (

    select * from {{ source('policy', 'policy_score_bands') }}

),

final as (

    select
        {{ policy_version_key() }} || '/' || score || '/' || band as score_band_id,
        {{ policy_version_key() }} as policy_version_id,
        policy,
        version as policy_version,
        score,
        weight as score_weight,
        band,
        band_rank,
        points
    from source

)

select * from final
