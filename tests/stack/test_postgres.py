"""PostgreSQL: the platform role, and a logical replication slot created, read and dropped with psycopg2."""
import time

import psycopg2
import psycopg2.extras


def test_logical_replication_slot_create_read_drop(postgres_settings, unique):
    slot = f"it_slot_{unique}"
    table = f"it_orders_{unique}"
    sql = psycopg2.connect(postgres_settings.dsn())
    sql.autocommit = True
    with sql.cursor() as cur:
        cur.execute("SHOW wal_level")
        assert cur.fetchone()[0] == "logical"
        cur.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, status text)")

    repl = psycopg2.connect(postgres_settings.dsn(),
                            connection_factory=psycopg2.extras.LogicalReplicationConnection)
    rcur = repl.cursor()
    try:
        rcur.create_replication_slot(slot, output_plugin="test_decoding")
        with sql.cursor() as cur:
            cur.execute(f"INSERT INTO {table} VALUES (1, 'new'), (2, 'new')")
            cur.execute(f"UPDATE {table} SET status = 'paid' WHERE id = 1")
            cur.execute(f"DELETE FROM {table} WHERE id = 2")
        rcur.start_replication(slot_name=slot, decode=True)
        changes, deadline, last_lsn = [], time.monotonic() + 30, None
        while time.monotonic() < deadline and not any("DELETE" in c for c in changes):
            msg = rcur.read_message()
            if msg is None:
                time.sleep(0.1)
                continue
            last_lsn = msg.data_start
            if table in msg.payload:
                changes.append(msg.payload)
        assert [c.split(":")[1].strip() for c in changes] == ["INSERT", "INSERT", "UPDATE", "DELETE"]
        assert "status[text]:'paid'" in changes[2]
        rcur.send_feedback(flush_lsn=last_lsn, force=True)  # what a connector does after Kafka acked
    finally:
        repl.close()
        with sql.cursor() as cur:
            for _ in range(50):  # the walsender lets go of the slot shortly after the connection closes
                cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
                row = cur.fetchone()
                if row is None or not row[0]:
                    break
                time.sleep(0.1)
            cur.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            cur.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            assert cur.fetchone()[0] == 0
            cur.execute(f"DROP TABLE {table}")
        sql.close()


def test_pgoutput_is_available_for_cdc(postgres_settings, unique):
    slot = f"it_pgoutput_{unique}"
    conn = psycopg2.connect(postgres_settings.dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT lsn FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
        assert cur.fetchone()[0]
        cur.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    conn.close()
