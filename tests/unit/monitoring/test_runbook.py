"""Every alert's runbook link, as deployed, is absolute: the setting's address, else the checkout's
file; the rule files themselves keep the repository-relative link their promtool tests assert."""
from __future__ import annotations

import yaml

from kappa.settings import Settings
from monitoring import runbook
from stack.prometheus import RULES


def _groups() -> list[dict]:
    return [g for path in sorted(RULES.glob("*.yml")) for g in yaml.safe_load(path.read_text())["groups"]]


def _links(groups: list[dict]) -> dict[str, str]:
    return {r["alert"]: r["annotations"]["runbook_url"] for g in groups for r in g["rules"] if "alert" in r}


def test_every_alert_links_its_section_under_the_configured_address():
    base = "https://git.example.com/data/kappa/-/blob/main/docs/runbook.md"
    settings = Settings(prometheus={"runbook_url": base})
    links = _links(runbook.rebased(_groups(), runbook.base_url(settings)))
    assert links and links == {name: f"{base}#{name.lower()}" for name in links}
    assert set(_links(_groups()).values()) == {f"docs/runbook.md#{n.lower()}" for n in links}  # sources untouched


def test_without_the_setting_the_links_open_the_checkouts_runbook():
    base = runbook.base_url(Settings())
    assert base.startswith("file:///") and base.endswith("/docs/runbook.md") and runbook.IN_CHECKOUT.exists()
    assert all(link.startswith(base + "#") for link in _links(runbook.rebased(_groups(), base)).values())
