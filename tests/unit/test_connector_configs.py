"""The example configs in the docs parse into the connectors' config models."""
from pathlib import Path

import pytest

from connectors.api.connector import ApiConfig
from connectors.cdc.connector import CdcConfig
from connectors.files.connector import FilesConfig
from connectors.runtime import load_config

ROOT = Path(__file__).resolve().parents[2]


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
    with pytest.raises(SystemExit, match="tables"):
        load_config(path, CdcConfig)
