"""Tools for developers, not the runtime path: sample data, benchmark, demo, project checks."""
