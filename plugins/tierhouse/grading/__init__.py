"""Grading: policy files, dbt runs, quality gates, drift, summaries and explanations."""
