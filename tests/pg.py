"""A throwaway PostgreSQL server on loopback, for the distributed-study tests.

Debian's ``postgresql`` package (installed here; ``apt-get install -y postgresql`` on a fresh
CI machine, as root) puts ``initdb`` and ``pg_ctl`` off PATH: :func:`pg_bin` finds them.
The server runs as the ``postgres`` user (PostgreSQL refuses root) in a private folder of
its own under ``/tmp`` (pytest's ``tmp_path`` is not reachable by another user), listens on
127.0.0.1 only, trusts local connections, and is stopped and removed in a ``finally``.

Examples
--------
>>> with postgres_server() as server:                 # doctest: +SKIP
...     url = server.create_database("optuna")        # postgresql+psycopg2://postgres@127.0.0.1:PORT/optuna
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed and cannot be installed here."""


def pg_bin(name: str) -> Path | None:
    """Path of a PostgreSQL server program (``initdb``, ``pg_ctl``), or None."""
    try:
        out = subprocess.run(["dpkg", "-L", "postgresql-15"], capture_output=True, text=True,
                             check=False).stdout.splitlines()
    except FileNotFoundError:  # not Debian
        out = []
    found = [line for line in out if line.endswith(f"/bin/{name}")]
    found += sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    found += [p for p in [shutil.which(name)] if p]
    return Path(found[0]) if found else None


def ensure_installed() -> None:
    """Install the ``postgresql`` package if its programs are missing (root only)."""
    if pg_bin("initdb") and pg_bin("pg_ctl"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PostgresUnavailable("PostgreSQL is not installed (apt-get install -y postgresql)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=False, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
                   check=True, env=env, capture_output=True)
    if not (pg_bin("initdb") and pg_bin("pg_ctl")):
        raise PostgresUnavailable("apt-get installed postgresql but initdb/pg_ctl are not found")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """A running server: ``url(db)`` for SQLAlchemy, ``create_database(name)``."""

    port: int
    folder: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    """Run as the ``postgres`` user when we are root (the server refuses to run as root)."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a fresh PostgreSQL on 127.0.0.1 (a free port); stop and delete it afterwards."""
    ensure_installed()
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="lshgan-pg-"))
    data, log = folder / "data", folder / "log"
    if os.geteuid() == 0:
        shutil.chown(folder, user="postgres")
    port = free_port()
    started = False
    try:
        subprocess.run(_as_postgres([str(initdb), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                       check=True, capture_output=True, text=True)
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder}"
        start = subprocess.run(_as_postgres([str(pg_ctl), "-D", str(data), "-l", str(log),
                                             "-o", opts, "-w", "start"]),
                               capture_output=True, text=True)
        if start.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {start.stderr}\n{tail}")
        started = True
        yield PostgresServer(port, folder)
    finally:
        if started:
            subprocess.run(_as_postgres([str(pg_ctl), "-D", str(data), "-m", "fast", "-w", "stop"]),
                           capture_output=True, check=False)
        shutil.rmtree(folder, ignore_errors=True)
