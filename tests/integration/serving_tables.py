"""The platform's pipelines as the tests run them, and the serving tables they derive."""
from streaming import pipelines
from streaming.jobs import pipeline
from streaming import stores
from streaming.tables import Table

ORDERS_JOB = pipeline.load(pipelines.path("orders")).definition()
CUSTOMERS_JOB = pipeline.load(pipelines.path("customers")).definition()

# From the orders contract (schemas/avro), enriched with the customer; "channel" once the e2e test's
# second schema version brings it.
ORDERS = Table("orders", ("order_id",), (
    ("order_id", "bigint"), ("event_id", "string"), ("event_time", "timestamp"), ("customer_id", "bigint"),
    ("status", "string"), ("amount", "double"), ("currency", "string"), ("updated_at", "timestamp"),
    ("customer_segment", "string"), ("customer_country", "string"),
))
ORDERS_WITH_CHANNEL = Table("orders", ORDERS.key, (*ORDERS.columns[:8], ("channel", "string"), *ORDERS.columns[8:]))

CUSTOMERS = Table("customers", ("customer_id",), (
    ("customer_id", "bigint"), ("name", "string"), ("segment", "string"), ("country", "string"),
    ("updated_at", "timestamp"), ("event_id", "string"), ("event_time", "timestamp"),
))


def customers_dimension(settings, namespace: str) -> None:
    """The customers table (empty) that the orders pipeline joins, as the customers pipeline makes it."""
    stores.get("postgres").ensure_table(settings, namespace, CUSTOMERS, "customers")
