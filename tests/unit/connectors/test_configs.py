"""The example configs in the docs parse into the connectors' config models."""
from pathlib import Path

import pytest

from connectors.api.connector import ApiConfig
from connectors.cdc.connector import CdcConfig
from connectors.files.connector import FilesConfig
from connectors.runtime import load_config
from kappa.errors import Refused

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("path, model", [
    ("connectors/cdc/example.toml", CdcConfig),
    ("connectors/api/example.toml", ApiConfig),
    ("connectors/files/example.toml", FilesConfig),
])
def test_example_config_parses(path, model):
    config = load_config(ROOT / path, model)
    assert config.name


def test_a_bad_config_names_the_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\ntopic_prefix = "a"\n')
    with pytest.raises(Refused, match="tables"):
        load_config(path, CdcConfig)


def test_secret_headers_come_from_the_environment_and_a_missing_one_stops_the_connector():
    config = ApiConfig(name="orders-api", url="http://api", topic="t", headers={"Accept-Language": "en"},
                       headers_from_env={"Authorization": "KAPPA_API_AUTHORIZATION"})
    assert config.request_headers({"KAPPA_API_AUTHORIZATION": "Bearer s3cret"}) == {
        "Accept-Language": "en", "Authorization": "Bearer s3cret"}
    with pytest.raises(Refused, match="KAPPA_API_AUTHORIZATION"):
        config.request_headers({})
