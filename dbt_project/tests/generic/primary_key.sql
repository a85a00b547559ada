{#- The grain of a model whose rows have no single key column: every combination of `columns`
    appears once and none of them is null. Returns the offending combinations. Models with a
    key column test it with dbt's own unique + not_null instead. -#}
{% test primary_key(model, columns) %}

select
    {{ columns | join(', ') }},
    count(*) as row_count
from {{ model }}
group by {{ columns | join(', ') }}
having
    count(*) > 1
    {%- for column in columns %}
    or {{ column }} is null
    {%- endfor %}

{% endtest %}
