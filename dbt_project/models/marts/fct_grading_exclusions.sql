with

population as (

    select * from {{ ref('int_grading_population') }}

),

final as (

    -- Art. 7: customers with an order in the window who may not be graded, and why
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
