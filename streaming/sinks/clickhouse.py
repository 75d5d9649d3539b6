"""ClickHouse: one large Arrow insert per batch into ReplacingMergeTree(_version, _deleted).

The ``insert_deduplication_token`` is derived from (query, batch, table): a batch replayed after a
crash is recognised and dropped by the server, and ReplacingMergeTree keeps the highest version
per key whatever arrives later.
"""
from __future__ import annotations

import clickhouse_connect
import pyarrow as pa
import pyarrow.compute as pc

from settings import Settings
from streaming.tables import Table


class ClickHouseSink:
    name = "clickhouse"

    def __init__(self, settings: Settings, namespace: str, query_name: str) -> None:
        ch = settings.clickhouse
        self.namespace = namespace
        self.query_name = query_name
        self.client = clickhouse_connect.get_client(host=ch.host, port=ch.port, username=ch.username,
                                                    password=ch.password, secure=ch.secure)

    def token(self, batch_id: int, table: str) -> str:
        return f"{self.query_name}:{batch_id}:{self.namespace}.{table}"

    def write(self, table: pa.Table, batch_id: int, spec: Table) -> None:
        if table.num_rows == 0:
            return
        data = table.select(spec.all_columns)
        data = data.set_column(data.schema.get_field_index("_deleted"), "_deleted",
                               pc.cast(data["_deleted"], pa.uint8()))
        self.insert(data, batch_id, spec.name)

    def insert(self, data: pa.Table, batch_id: int, table: str) -> None:
        self.client.insert_arrow(f"{self.namespace}.{table}", data,
                                 settings={"insert_deduplication_token": self.token(batch_id, table)})

    def close(self) -> None:
        self.client.close()
