with

source as (

    select * from {{ source('policy', 'policy_versions') }}

),

final as (

    select
        {{ policy_version_key() }} as policy_version_id,
        policy,
        version as policy_version,
        effective_from,
        sha256 as policy_sha256,
        document as policy_document
    from source

)

select * from final
