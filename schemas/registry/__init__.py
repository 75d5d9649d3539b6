"""A Confluent-compatible schema registry for Avro, storing its state in a compacted Kafka topic.

No Confluent-API registry installs from the registries these machines reach (Karapace is not on
PyPI, Confluent's is not on Maven Central, Apicurio is published only as Quarkus build inputs), so
the platform ships this one. It speaks the REST API that Confluent clients use (subjects,
versions, ids, ``/config``, ``/compatibility``), keeps every change in a compacted topic the way
Confluent Schema Registry keeps ``_schemas``, and checks Avro compatibility with the rules of the
Apache ``avro`` package. It runs as a single instance: the topic is its durable state, not a
coordination channel between several writers. Schema references are resolved as Confluent's are
(:mod:`schemas.registry.compatibility`, :mod:`schemas.registry.store`).
"""
