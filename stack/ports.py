"""Fixed ports of the local stack.

Each is its product's default moved into a range of its own (mostly 1xxxx), so a developer's own
Kafka, PostgreSQL or Cassandra on the usual ports keeps running beside the stack. The settings
layer's defaults point at these; README.md lists them.
"""
KAFKA = 19092
KAFKA_CONTROLLER = 19093
SCHEMA_REGISTRY = 18081
CASSANDRA_CQL = 19042
CASSANDRA_STORAGE = 17000
S3 = 18333
# SeaweedFS runs master, volume, filer and S3 servers in one process; each has an HTTP and a gRPC port.
SEAWEED_MASTER = 19333
SEAWEED_VOLUME = 18080
SEAWEED_FILER = 18888
SEAWEED_ADMIN = 18646
SEAWEED_METRICS = 19327
SEAWEED_GRPC_OFFSET = 10000
CLICKHOUSE_HTTP = 18123
POSTGRES = 15432
PROMETHEUS = 19090
