"""What every service of the local stack has: a folder, a pid, a log, a health check."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from stack import process
from stack.paths import REPO_ROOT, service_dir


CODE_SUFFIXES = (".py", ".yml", ".yaml", ".toml")  # what a server's `code` folders hold that it reads


@dataclass(frozen=True)
class Status:
    name: str
    up: bool
    port: int
    pid: int | None
    log_file: Path


class Service:
    """One server of the stack. Subclasses say how to install, initialise, run and probe it."""

    name: str = ""
    port: int = 0
    start_timeout: float = 120.0
    stop_grace: float = 60.0
    depends_on: tuple[str, ...] = ()
    # Unix user to run as (PostgreSQL refuses root).
    user: str | None = None
    # The checkout's folders whose code or configuration the server runs (the registry is the
    # platform's own; Prometheus evaluates the platform's rules): a running server whose files
    # changed since it started is restarted by `up`.
    code: tuple[str, ...] = ()

    @property
    def home(self) -> Path:
        return service_dir(self.name)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.home / f"{self.name}.pid"

    # -- to override ---------------------------------------------------------------------------
    def provision(self) -> None:
        """Install what the server needs (idempotent; quick when already done)."""

    def prepare(self) -> None:
        """Write configuration and initialise the data folder once (idempotent)."""

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {}

    def healthy(self) -> bool:
        return process.port_open(self.port)

    def after_start(self) -> None:
        """One-off set-up that needs the running server (users, databases); idempotent."""

    # -- lifecycle -------------------------------------------------------------------------------
    def pid(self) -> int | None:
        return process.read_pid(self.pid_file)

    def code_changed(self) -> bool:
        """Whether the server runs older code of the checkout than the checkout has now."""
        recorded = self.home / "code.sha256"
        return bool(self.code) and (not recorded.exists() or recorded.read_text() != self._code_digest())

    def _code_digest(self) -> str:
        digest = hashlib.sha256()
        for folder in self.code:
            for path in sorted(p for p in (REPO_ROOT / folder).rglob("*")
                               if p.is_file() and p.suffix in CODE_SUFFIXES and "__pycache__" not in p.parts):
                digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()

    def start(self) -> None:
        """Start the server unless it runs already (with the checkout's code); does not wait for health."""
        if self.pid() is not None:
            if not self.code_changed():
                return
            self.stop()
        if process.port_open(self.port):
            raise process.ServiceError(
                f"{self.name}: port {self.port} is taken by a process the stack did not start "
                f"(see `ss -ltnp | grep {self.port}`); stop it or free the port"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        process.spawn(
            self.command(), pid_file=self.pid_file, log_file=self.log_file,
            env=self.environment(), cwd=self.home, user=self.user,
        )
        if self.code:
            (self.home / "code.sha256").write_text(self._code_digest())

    def wait_healthy(self) -> None:
        process.wait_until(
            self.healthy, timeout=self.start_timeout, alive=lambda: self.pid() is not None,
            what=f"{self.name} (port {self.port})", log_file=self.log_file,
        )
        self.after_start()

    def stop(self) -> bool:
        return process.stop(self.pid_file, grace=self.stop_grace)

    def status(self) -> Status:
        pid = self.pid()
        return Status(self.name, pid is not None and self.healthy(), self.port, pid, self.log_file)
