"""The settings layer: defaults point at the local stack, a TOML file and env vars override them."""
import pytest

from kappa.settings import Settings, SettingsRefused
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


def test_a_misspelt_variable_is_refused_naming_the_setting_it_resembles(monkeypatch):
    monkeypatch.setenv("KAPPA_KAFKA__BOOTSTRAP_SERVER", "prod:9092")
    with pytest.raises(SettingsRefused, match="KAPPA_KAFKA__BOOTSTRAP_SERVER is not a setting; did you mean "
                                              "KAPPA_KAFKA__BOOTSTRAP_SERVERS"):
        Settings()
    monkeypatch.delenv("KAPPA_KAFKA__BOOTSTRAP_SERVER")
    monkeypatch.setenv("KAPPA_KAFK__BOOTSTRAP_SERVERS", "prod:9092")
    with pytest.raises(SettingsRefused, match="no group 'kafk'; did you mean KAPPA_KAFKA__"):
        Settings()


def test_a_misspelt_file_key_is_refused_and_a_bad_value_names_its_setting(monkeypatch, tmp_path):
    config = tmp_path / "prod.toml"
    config.write_text('[kafka]\nbootstrap_server = "prod:9092"\n')
    monkeypatch.setenv("KAPPA_CONFIG", str(config))
    with pytest.raises(SettingsRefused, match=r"\[kafka\] bootstrap_server is not a setting; did you mean "
                                              "bootstrap_servers"):
        Settings()
    config.write_text('[clickhouse]\nport = "eighty"\n')
    with pytest.raises(SettingsRefused, match="clickhouse.port"):
        Settings()


def test_every_variable_is_one_scheme_and_an_old_name_is_refused_with_its_new_one(monkeypatch):
    for variable, value in {"KAPPA_PORTS__KAFKA": "19092", "KAPPA_ORCHESTRATION__RUNNER": "local",
                            "KAPPA_STACK__HOME": "/tmp/kappa", "KAPPA_PROMETHEUS__TARGETS_DIR": "/tmp/targets"}.items():
        monkeypatch.setenv(variable, value)  # read by the ports, the DAGs, the state folder, the targets
    assert Settings().prometheus.targets_dir == "/tmp/targets"
    for old, new in {"KAPPA_STACK_HOME": "KAPPA_STACK__HOME", "KAPPA_PORT_KAFKA": "KAPPA_PORTS__KAFKA",
                     "KAPPA_REPLAY_RUNNER": "KAPPA_ORCHESTRATION__RUNNER", "KAPPA_IMAGE": "KAPPA_ORCHESTRATION__IMAGE",
                     "SCHEMA_REGISTRY_URL": "KAPPA_REGISTRY__URL"}.items():
        with monkeypatch.context() as m:
            m.setenv(old, "x")
            with pytest.raises(SettingsRefused, match=f"^{old} was renamed {new} "):
                Settings()
    monkeypatch.setenv("KAPPA_STACK__HOMEDIR", "/tmp")
    with pytest.raises(SettingsRefused, match="KAPPA_STACK__HOMEDIR is not a setting; did you mean KAPPA_STACK__HOME"):
        Settings()
