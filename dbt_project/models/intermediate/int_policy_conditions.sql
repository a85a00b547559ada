{#- Tier rules, score bands and quarterly re-grade rules (P1 Art. 9) are lists of conditions of
    one shape; here they are one table, told apart by rule_kind, so that one macro
    (check_policy_conditions) checks every kind against a customer's values. -#}

with

tier_conditions as (

    select * from {{ ref('stg_policy__tier_conditions') }}

),

band_conditions as (

    select * from {{ ref('stg_policy__band_conditions') }}

),

regrade_conditions as (

    select * from {{ ref('stg_policy__regrade_conditions') }}

),

conditions as (

    -- rule: the tier, the score's band (score/band) or the re-grade rule the condition belongs to
    select
        policy_version_id,
        'tier' as rule_kind,
        tier as rule,
        tier_rank,
        tier_label,
        null::text as score,
        null::text as band,
        null::text as from_tier,
        null::text as to_tier,
        condition_id,
        match_group,
        indicator,
        operator,
        threshold
    from tier_conditions
    union all
    select
        policy_version_id,
        'band' as rule_kind,
        score || '/' || band as rule,
        null::integer as tier_rank,
        null::text as tier_label,
        score,
        band,
        null::text as from_tier,
        null::text as to_tier,
        condition_id,
        match_group,
        indicator,
        operator,
        threshold
    from band_conditions
    union all
    select
        policy_version_id,
        'regrade' as rule_kind,
        rule,
        null::integer as tier_rank,
        null::text as tier_label,
        null::text as score,
        null::text as band,
        from_tier,
        to_tier,
        condition_id,
        match_group,
        indicator,
        operator,
        threshold
    from regrade_conditions

),

final as (

    select
        policy_version_id || '/' || rule_kind || '/' || rule || '/' || condition_id as policy_condition_id,
        policy_version_id,
        rule_kind,
        rule,
        tier_rank,
        tier_label,
        score,
        band,
        from_tier,
        to_tier,
        condition_id,
        match_group,
        indicator,
        operator,
        threshold
    from conditions

)

select * from final
