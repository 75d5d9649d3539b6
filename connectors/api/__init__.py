"""``kappa connector api --config api.toml``: poll an HTTP JSON API with an incremental cursor."""
