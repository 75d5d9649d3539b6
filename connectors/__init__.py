"""Long-running processes that publish source changes to Kafka as Avro: ``api``, ``cdc``, ``files``.

What they share lives beside them: the idempotent producer with its dead-letter queue
(:mod:`connectors.producer`), source positions kept in Kafka (:mod:`connectors.checkpoints`),
metrics (:mod:`connectors.metrics`), and the process runtime: config, logs, signals
(:mod:`connectors.runtime`). Each connector acknowledges its source only after Kafka has
acknowledged every event before that position.
"""
