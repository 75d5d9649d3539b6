"""Streaming jobs: ``python -m streaming.jobs.<name> --config <job>.toml`` (or spark-submit the module's file)."""
