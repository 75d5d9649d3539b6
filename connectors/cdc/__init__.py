"""``python -m connectors.cdc --config cdc.toml``: PostgreSQL CDC (logical replication, pgoutput)."""
