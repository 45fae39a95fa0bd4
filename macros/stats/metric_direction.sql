{#-
    "Better by the metric's direction", defined once: a number that is larger the better the
    value is. higher_is_better true: the value itself; false: its negation; null ("closer to
    the optimal range's midpoint is better"): minus the distance to the midpoint
    (optimal_low + optimal_high) / 2. So "a is better than b" is goodness(a) > goodness(b),
    "the best value" is the one of greatest goodness, and equal goodness is "no better".
-#}
{% macro metric_goodness(value, higher_is_better, optimal_low, optimal_high) -%}
    (case
        when {{ higher_is_better }} then ({{ value }})
        when not {{ higher_is_better }} then -({{ value }})
        else -abs(({{ value }}) - (({{ optimal_low }}) + ({{ optimal_high }})) / 2.0)
    end)
{%- endmacro %}

{#- Whether the value meets the goal: higher_is_better true: value >= target; false:
    value <= target; null: optimal_low <= value <= optimal_high. -#}
{% macro metric_meets_goal(value, higher_is_better, target, optimal_low, optimal_high) -%}
    (case
        when {{ higher_is_better }} then ({{ value }}) >= ({{ target }})
        when not {{ higher_is_better }} then ({{ value }}) <= ({{ target }})
        else ({{ value }}) between ({{ optimal_low }}) and ({{ optimal_high }})
    end)
{%- endmacro %}
