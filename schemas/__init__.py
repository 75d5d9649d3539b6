"""Avro contracts of the platform's topics, their serde and the schema registry they live in."""
