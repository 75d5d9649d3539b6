"""The settings layer: defaults point at the local stack, a TOML file and env vars override them."""
import pytest

from kappa.settings import Settings
from stack import ports


def test_defaults_are_the_local_stack(monkeypatch):
    monkeypatch.delenv("KAPPA_CONFIG", raising=False)
    s = Settings()
    assert s.kafka.bootstrap_servers == f"127.0.0.1:{ports.KAFKA}"
    assert s.clickhouse.port == ports.CLICKHOUSE_HTTP
    assert s.postgres.dsn().startswith(f"host=127.0.0.1 port={ports.POSTGRES} ")
    assert s.s3.url == f"http://127.0.0.1:{ports.S3}"


def test_file_then_environment_override(monkeypatch, tmp_path):
    config = tmp_path / "prod.toml"
    config.write_text(
        '[kafka]\nbootstrap_servers = "broker-1:9092,broker-2:9092"\n'
        '[clickhouse]\nhost = "ch.prod"\nport = 8443\nsecure = true\n'
    )
    monkeypatch.setenv("KAPPA_CONFIG", str(config))
    monkeypatch.setenv("KAPPA_CLICKHOUSE__PORT", "9443")
    s = Settings()
    assert s.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert s.clickhouse.host == "ch.prod" and s.clickhouse.secure is True
    assert s.clickhouse.port == 9443  # the environment wins over the file
    assert s.cassandra.port == ports.CASSANDRA_CQL  # untouched groups keep their defaults


def test_missing_config_file_names_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("KAPPA_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match="KAPPA_CONFIG"):
        Settings()
