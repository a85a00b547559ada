{#- Tier rules, score bands and quarterly re-grade rules are all lists of conditions
    `indicator operator threshold` (int_policy_conditions holds them, told apart by rule_kind).
    A rule holds when every `all` condition holds and, if it has `any` conditions, at least one
    of them does. A missing value never meets a condition. -#}

{#- One row per customer period and condition of the `rule_kind` rules, with the customer's value
    and whether the condition holds: `conditions` names a CTE of int_policy_conditions rows and
    `indicator_values` one of (customer_period_id, policy_version_id, indicator, indicator_value). -#}
{% macro check_policy_conditions(rule_kind, conditions, indicator_values) -%}
    select
        {{ indicator_values }}.customer_period_id,
        {{ conditions }}.rule,
        {{ conditions }}.tier_rank,
        {{ conditions }}.tier_label,
        {{ conditions }}.score,
        {{ conditions }}.band,
        {{ conditions }}.from_tier,
        {{ conditions }}.to_tier,
        {{ conditions }}.condition_id,
        {{ conditions }}.match_group,
        {{ conditions }}.indicator,
        {{ indicator_values }}.indicator_value,
        {{ conditions }}.operator,
        {{ conditions }}.threshold,
        coalesce(
            case {{ conditions }}.operator
                when '>=' then {{ indicator_values }}.indicator_value >= {{ conditions }}.threshold
                when '>' then {{ indicator_values }}.indicator_value > {{ conditions }}.threshold
                when '<=' then {{ indicator_values }}.indicator_value <= {{ conditions }}.threshold
                when '<' then {{ indicator_values }}.indicator_value < {{ conditions }}.threshold
            end,
            false
        ) as is_met
    from {{ conditions }}
    inner join {{ indicator_values }}
        on
            {{ conditions }}.policy_version_id = {{ indicator_values }}.policy_version_id
            and {{ conditions }}.indicator = {{ indicator_values }}.indicator
    where {{ conditions }}.rule_kind = '{{ rule_kind }}'
{%- endmacro %}

{#- Whether one rule holds, aggregated over its rows of check_policy_conditions. -#}
{% macro rule_holds(is_met, match_group) -%}
    coalesce(bool_and({{ is_met }}) filter (where {{ match_group }} = 'all'), true)
    and coalesce(bool_or({{ is_met }}) filter (where {{ match_group }} = 'any'), true)
{%- endmacro %}
