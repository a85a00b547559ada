{#- 000 Art. 7 "数据收集前需告知客户使用目的并获明示授权": a member's grading consent as runs of
    consecutive CRM versions with consent. Only orders placed inside a run count towards a grade
    made while that run is in force (docs/POLICIES.md, "Consent in time"). -#}

with

member_versions as (

    select * from {{ ref('stg_crm__member_versions') }}

),

flagged as (

    select
        member_id,
        valid_from,
        valid_to,
        has_grading_consent,
        grading_consent_at,
        -- a run starts at a consenting version whose predecessor (if any) had no consent
        has_grading_consent
        and not coalesce(
            lag(has_grading_consent) over (partition by member_id order by valid_from), false
        ) as starts_run
    from member_versions

),

numbered as (

    select
        *,
        count(*) filter (where starts_run) over (partition by member_id order by valid_from) as run_number
    from flagged

),

runs as (

    select
        member_id,
        run_number,
        min(valid_from) as run_from,
        -- the consent time the CRM recorded with the run's first version; its valid_from without one
        (array_agg(coalesce(grading_consent_at, valid_from) order by valid_from))[1] as consent_from,
        case when bool_or(valid_to is null) then null else max(valid_to) end as consent_to
    from numbered
    where has_grading_consent
    group by member_id, run_number

),

final as (

    select
        member_id || '@' || to_char(run_from, 'YYYY-MM-DD"T"HH24:MI:SS') as grading_consent_id,
        member_id,
        run_from,
        consent_from,
        consent_to
    from runs

)

select * from final
