"""PostgreSQL 15 from Debian with ``wal_level=logical``: the CDC source and the reporting sink.

``initdb`` and ``postgres`` refuse to run as root, so as root the cluster runs as the ``postgres``
user the Debian package creates, with its data in the stack folder. The platform connects over
TCP with the ``kappa`` role (LOGIN REPLICATION); the superuser is reached only through the
cluster's own Unix socket.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from string import Template

from stack import ports
from stack.paths import STACK_DIR
from stack.process import ServiceError
from stack.provision import ensure_debian_packages
from stack.service import Service
from kappa.settings import PostgresSettings

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CONF = STACK_DIR / "conf" / "postgres"


class Postgres(Service):
    name = "postgres"
    port = ports.POSTGRES
    start_timeout = 60.0

    def __init__(self) -> None:
        self.user = "postgres" if os.geteuid() == 0 else None
        self.role = PostgresSettings()  # the role and database the platform uses locally

    @property
    def socket_dir(self) -> Path:
        return self.home / "run"

    def provision(self) -> None:
        if not (PG_BIN / "postgres").exists():
            ensure_debian_packages("postgresql-15")

    def prepare(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.user:
            owner = pwd.getpwnam(self.user)
            for path in (self.home, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            if self.data_dir.exists():
                shutil.rmtree(self.data_dir)  # a half-made folder from an interrupted initdb
            result = subprocess.run(
                [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-U", "postgres",
                 "--encoding=UTF8", "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256"],
                capture_output=True, text=True, user=self.user, cwd=self.home,
            )
            if result.returncode != 0:
                raise ServiceError(f"postgres: initdb {self.data_dir} failed:\n{result.stdout}{result.stderr}")
            with open(self.data_dir / "postgresql.conf", "a") as conf:
                conf.write("\ninclude 'kappa.conf'\n")
            with open(self.data_dir / "pg_hba.conf", "a") as hba:
                hba.write("host replication all 127.0.0.1/32 scram-sha-256\n")
        (self.data_dir / "kappa.conf").write_text(
            Template((CONF / "kappa.conf").read_text()).substitute(
                port=self.port, socket_dir=self.socket_dir
            )
        )

    def command(self) -> list[str]:
        return [str(PG_BIN / "postgres"), "-D", str(self.data_dir)]

    def superuser_sql(self, sql: str, dbname: str = "postgres") -> str:
        result = subprocess.run(
            [str(PG_BIN / "psql"), "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres",
             "-d", dbname, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise ServiceError(f"postgres: `{sql}` failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def healthy(self) -> bool:
        result = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
        )
        return result.returncode == 0

    def after_start(self) -> None:
        role, db = self.role.user, self.role.dbname
        if not self.superuser_sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'"):
            self.superuser_sql(
                f"CREATE ROLE {role} LOGIN REPLICATION PASSWORD '{self.role.password}'"
            )
        if not self.superuser_sql(f"SELECT 1 FROM pg_database WHERE datname = '{db}'"):
            self.superuser_sql(f"CREATE DATABASE {db} OWNER {role}")
