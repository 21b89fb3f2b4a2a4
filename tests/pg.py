"""A throw-away PostgreSQL server for the tests: Debian's ``initdb`` and ``pg_ctl``, a temporary cluster.

The cluster lives in a temporary folder, listens on 127.0.0.1 on a free port (never Debian's
own cluster on 5432) and on a socket in that folder, and is stopped and deleted at the end of
the session. PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` system
user the Debian package creates (or ``bplpg``, created if missing). Clients log in over TCP
with a password, as an instructor's grader would.

Use the ``postgres`` fixture (session-scoped) and its :meth:`PostgresServer.new_database`,
e.g. ``db_url = postgres.new_database("pipeline")``. Without the server binaries or the
``psycopg`` driver, the tests that use it are skipped, saying which is missing.
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

USER, PASSWORD = "grader", "s3cret-pw"
SERVICE_USERS = ("postgres", "bplpg")
# Durability is worthless in a cluster deleted at the end of the run, and costs seconds per commit burst.
SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": "100"}


def server_binaries():
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl, or None."""
    found = [Path(path).parent for path in glob.glob("/usr/lib/postgresql/*/bin/initdb")
             if os.access(Path(path).parent / "pg_ctl", os.X_OK)]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0) if found else None


def _service_account():
    """A non-root account to run the server as (created if none exists); None when not root."""
    if os.geteuid() != 0:
        return None
    for name in SERVICE_USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USERS[-1]], check=True)
    return pwd.getpwnam(SERVICE_USERS[-1])


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    def __init__(self, binaries):
        self.binaries = binaries
        self.account = _service_account()
        # In /tmp, not $TMPDIR: the service account must reach it, and the socket path must stay under 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="backprop-lab-pg-", dir="/tmp"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = None

    def initdb(self):
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n")
        if self.account:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
            os.chown(password_file, self.account.pw_uid, self.account.pw_gid)
        self._run("initdb", "--pgdata", str(self.data), "--username", USER, "--pwfile", str(password_file),
                  "--auth-local", "trust", "--auth-host", "scram-sha-256", "--encoding", "UTF8", "--no-instructions")
        password_file.unlink()
        return self

    def _run(self, tool, *args, check=True):
        account = self.account
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(self.root)}
        result = subprocess.run([str(self.binaries / tool), *args], cwd=self.root, env=env, capture_output=True, text=True,
                                user=account.pw_uid if account else None, group=account.pw_gid if account else None,
                                extra_groups=[] if account else None, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{self._log_tail()}")
        return result

    def _log_tail(self):
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def start(self, attempts=5):
        options = " ".join(f"-c {key}={value}" for key, value in SETTINGS.items())
        for attempt in range(attempts):
            self.port = _free_port()  # another process may take it before the server binds: then try another
            result = self._run("pg_ctl", "start", "--wait", "--timeout", "60", "--pgdata", str(self.data), "--log", str(self.log),
                               "--options", f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} {options}", check=False)
            if result.returncode == 0:
                return self
            if attempt == attempts - 1:
                raise RuntimeError(f"pg_ctl start failed:\n{result.stdout}\n{result.stderr}\n{self._log_tail()}")
            time.sleep(0.5)

    def stop(self):
        if self.data.is_dir():
            self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", "immediate", "--wait", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database="postgres", driver="postgresql+psycopg"):
        return f"{driver}://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def new_database(self, name):
        """Create (or re-create, empty) database ``name``; its SQLAlchemy URL."""
        import psycopg
        with psycopg.connect(self.url(driver="postgresql"), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@pytest.fixture(scope="session")
def postgres():
    """A running throw-away PostgreSQL server (see the module docstring)."""
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("the PostgreSQL driver psycopg is not installed (pip install 'psycopg[binary]')")
    server = PostgresServer(binaries)
    try:
        yield server.initdb().start()
    finally:
        server.stop()
