"""ClickHouse: one Arrow insert per partition into ReplacingMergeTree(_version, _deleted).

The ``insert_deduplication_token`` is derived from (query, batch, partition, table): a partition
rewritten after a crash is recognised and dropped by the server, and ReplacingMergeTree keeps the
highest version per key whatever arrives later.
"""
from __future__ import annotations

import clickhouse_connect
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_connect.driver.exceptions import OperationalError

from kappa.settings import Settings
from streaming.sinks.base import Sink, WriteToken
from streaming.tables import Table


def client(settings: Settings):
    ch = settings.clickhouse
    return clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username, password=ch.password,
                                         secure=ch.secure)


class ClickHouseSink(Sink):
    name = "clickhouse"
    # Connection refused, reset or timed out; errors the server answers with are not retried.
    transient = (OperationalError, ConnectionError, TimeoutError)

    def __init__(self, settings: Settings, namespace: str) -> None:
        super().__init__(namespace)
        self.settings = settings
        self._client = None

    @property
    def address(self) -> str:
        return f"{self.settings.clickhouse.host}:{self.settings.clickhouse.port}"

    def write(self, rows: pa.Table, spec: Table, token: WriteToken) -> None:
        if rows.num_rows == 0:
            return
        data = rows.select(spec.all_columns)
        data = data.set_column(data.schema.get_field_index("_deleted"), "_deleted",
                               pc.cast(data["_deleted"], pa.uint8()))
        self.insert(data, spec.name, token)

    def insert(self, data: pa.Table, table: str, token: WriteToken) -> None:
        """Any Arrow table into ``<namespace>.<table>``, deduplicated by the write's token."""
        if self._client is None:
            self._client = client(self.settings)
        qualified = f"{self.namespace}.{table}"
        self._client.insert_arrow(qualified, data, settings={"insert_deduplication_token": token.for_table(qualified)})

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
