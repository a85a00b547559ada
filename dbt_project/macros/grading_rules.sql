{#- How a policy condition is checked, in one place for tier rules and score bands alike.
    A missing value never meets a condition. -#}
{% macro condition_holds(value, operator, threshold) -%}
    coalesce(
        case {{ operator }}
            when '>=' then {{ value }} >= {{ threshold }}
            when '>' then {{ value }} > {{ threshold }}
            when '<=' then {{ value }} <= {{ threshold }}
            when '<' then {{ value }} < {{ threshold }}
        end,
        false
    )
{%- endmacro %}

{#- A rule (tier or band) holds when every `all` condition holds and, if it has `any`
    conditions, at least one of them does. Aggregates over one rule's condition checks. -#}
{% macro rule_holds(is_met, match_group) -%}
    coalesce(bool_and({{ is_met }}) filter (where {{ match_group }} = 'all'), true)
    and coalesce(bool_or({{ is_met }}) filter (where {{ match_group }} = 'any'), true)
{%- endmacro %}
