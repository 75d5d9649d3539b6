"""Cassandra with cassandra-driver: prepared statements, an upsert, a read by key."""
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import DCAwareRoundRobinPolicy


def test_prepared_insert_and_select(cassandra_settings, unique):
    profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy(cassandra_settings.local_dc))
    cluster = Cluster(cassandra_settings.hosts, port=cassandra_settings.port, protocol_version=5,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    session = cluster.connect()
    keyspace = f"it_{unique}"
    try:
        session.execute(
            f"CREATE KEYSPACE {keyspace} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
        )
        session.execute(f"CREATE TABLE {keyspace}.orders (id bigint PRIMARY KEY, status text, amount double)")
        insert = session.prepare(f"INSERT INTO {keyspace}.orders (id, status, amount) VALUES (?, ?, ?)")
        for i in range(50):
            session.execute(insert, (i, "new", float(i)))
        session.execute(insert, (7, "paid", 7.0))  # an upsert: same key, new value
        select = session.prepare(f"SELECT status, amount FROM {keyspace}.orders WHERE id = ?")
        assert session.execute(select, (7,)).one() == ("paid", 7.0)
        assert session.execute(f"SELECT count(*) FROM {keyspace}.orders").one()[0] == 50
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        cluster.shutdown()
