with

population as (

    select * from {{ ref('int_grading_population') }}

),

final as (

    -- Art. 7: customers who bought in the window but may not be graded, and why
    select
        customer_period_id,
        policy,
        policy_version,
        period_month,
        customer_key,
        exclusion_reason
    from population
    where not is_graded

)

select * from final
