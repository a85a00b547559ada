{#- `tierhouse simulate` builds the grading models under a prefix (var simulation_prefix) in the
    same schemas, so a what-if never replaces a relation that publishing, BI or the gates read;
    seeds keep their names: a simulation reads the ones the last build loaded. -#}
{% macro generate_alias_name(custom_alias_name=none, node=none) -%}
    {%- set name = custom_alias_name if custom_alias_name is not none else node.name -%}
    {%- if node.resource_type == 'model' -%}
        {{ var('simulation_prefix', '') }}{{ name | trim }}
    {%- else -%}
        {{ name | trim }}
    {%- endif -%}
{%- endmacro %}
