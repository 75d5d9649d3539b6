"""``kappa connector cdc --config cdc.toml``: PostgreSQL CDC (logical replication, pgoutput)."""
