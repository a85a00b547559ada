"""What the DAGs call: task functions, shared task chains, DAG defaults, Assets and Cosmos wiring."""
