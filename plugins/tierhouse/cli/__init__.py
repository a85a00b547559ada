"""The `tierhouse` command."""
