"""Spark Structured Streaming: Kafka -> decode -> clean -> enrich -> sinks (shared with batch replay)."""
