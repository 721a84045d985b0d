"""Storage: tables, engine and sessions, schema migrations, and the data functions on them."""
