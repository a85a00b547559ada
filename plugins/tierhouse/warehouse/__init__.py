"""The warehouse: connections, the embedded PostgreSQL server and the schema migrations."""
