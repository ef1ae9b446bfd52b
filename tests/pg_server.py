"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary folder,
listening on a Unix socket only (no port to collide on), stopped and removed after.

initdb refuses to run as root, so as root the cluster runs as the `postgres` system user
(Debian's postgresql package creates it). Without PostgreSQL binaries the tests skip,
except in CI (CI=true), where they fail: CI installs PostgreSQL (.ci/run)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile

import pytest


def find_bindir() -> str | None:
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(candidates[-1]) if candidates else None


def unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is needed in CI: {reason}")
    pytest.skip(f"no PostgreSQL server to test against: {reason}", allow_module_level=True)


class Cluster:
    def __init__(self):
        bindir = find_bindir()
        if bindir is None:
            unavailable("initdb not found on PATH nor in /usr/lib/postgresql/*/bin "
                        "(apt-get install postgresql)")
        self.bindir = bindir
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                unavailable("running as root without runuser to drop to the postgres user")
            try:
                import pwd
                account = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root and there is no postgres system user")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.dir = tempfile.mkdtemp(prefix="clustore-pg-")
        if self.prefix:
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "log")
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync", "--locale=C")
        options = (f"-k {self.dir} -c listen_addresses='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=30")
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "start")
        self.databases = 0

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self.prefix, os.path.join(self.bindir, tool), *args],
                                capture_output=True, text=True, cwd=self.dir)
        if result.returncode != 0:
            log = open(self.log).read() if os.path.exists(self.log) else ""
            raise RuntimeError(f"{tool} failed: {result.stderr}{result.stdout}{log}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.dir}"

    def new_database(self) -> str:
        import psycopg
        self.databases += 1
        name = f"mirror{self.databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    """One throwaway server per test module (import this fixture into the module)."""
    server = Cluster()
    yield server
    server.stop()


@pytest.fixture
def url(cluster):
    """A fresh, empty database of that server."""
    return cluster.new_database()
