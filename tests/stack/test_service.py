"""A server of the stack that runs the checkout's own code or rules is restarted by `make up` once they changed."""
from pathlib import Path

from stack import service as service_module
from stack.service import Service


class _OwnCode(Service):
    name = "own-code"
    code = ("app",)

    def __init__(self, home: Path) -> None:
        self._home = home

    @property
    def home(self) -> Path:
        return self._home


def test_a_server_of_the_checkouts_code_knows_when_that_code_changed(tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    (checkout / "app").mkdir(parents=True)
    (checkout / "app" / "server.py").write_text("ANSWER = 1\n")
    monkeypatch.setattr(service_module, "REPO_ROOT", checkout)
    server = _OwnCode(tmp_path / "home")
    server.home.mkdir()
    assert server.code_changed()  # never started: nothing recorded
    (server.home / "code.sha256").write_text(server._code_digest())  # what start() records
    assert not server.code_changed()
    (checkout / "app" / "server.py").write_text("ANSWER = 2\n")
    assert server.code_changed()
    (server.home / "code.sha256").write_text(server._code_digest())
    (checkout / "app" / "__pycache__").mkdir()
    (checkout / "app" / "__pycache__" / "server.cpython-311.pyc").write_bytes(b"compiled")
    assert not server.code_changed()  # compiling it changes nothing
    (checkout / "app" / "rules.yml").write_text("groups: []\n")
    assert server.code_changed()  # a rule file it evaluates (Prometheus) is its code too
    assert not Service().code_changed()  # a server of a package (Kafka, PostgreSQL) never is
