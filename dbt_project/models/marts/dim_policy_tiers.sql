with

policy_versions as (

    select * from {{ ref('stg_policy__versions') }}

),

final as (

    -- the tiers of every policy version with their service plan (Art. 10-12, 001's service content)
    select
        policy_versions.policy_version_id || '/' || tiers.tier as policy_tier_id,
        policy_versions.policy,
        policy_versions.policy_version,
        tiers.tier,
        tiers.spec ->> 'label' as tier_label,
        (tiers.spec ->> 'rank')::integer as tier_rank,
        tiers.spec -> 'service' ->> 'follow_up' as follow_up_cadence,
        tiers.spec -> 'service' as service_plan
    from policy_versions
    cross join lateral jsonb_each(policy_versions.policy_document -> 'tiers') as tiers (tier, spec)

)

select * from final
