{#- The key of a policy version, e.g. highend_flower@1, from its raw policy and version columns.
    Python builds the same key (tierhouse.grading.policy.Policy.policy_version_id) from the same var. -#}
{% macro policy_version_key(policy='policy', version='version') -%}
    {{ policy }} || '{{ var("policy_version_separator") }}' || {{ version }}
{%- endmacro %}
