"""A throw-away JupyterLab server and a headless Debian Chromium for the browser tests.

The server runs on a free loopback port with a random token, in a home, config, data and
settings folder of its own, so no user setting, workspace or announcement gets in the way; the
installed lab extensions (ipywidgets' manager among them) stay visible because they live under
``sys.prefix``. It serves a temporary copy of the assignments, so running the notebooks never
touches the course sources.
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "course" / "source"
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_TIMEOUT = 120  # seconds; a loaded two-core machine needs about 25

# Server extensions the notebooks do not need; each one only slows the start.
UNUSED_SERVER_EXTENSIONS = ["jupyter_lsp", "nbgrader.server_extensions.formgrader",
                            "nbgrader.server_extensions.assignment_list",
                            "nbgrader.server_extensions.course_list",
                            "nbgrader.server_extensions.validate_assignment"]
# User settings of the lab: every cell stays in the DOM (no windowing), so the test can see
# every prompt and every output; no news, no update check.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


@dataclass(frozen=True)
class JupyterLab:
    """A running server: its base URL, token and the folder it serves."""

    url: str
    token: str
    root: Path

    def notebook_url(self, path, workspace):
        """The URL that opens ``path`` alone, in a fresh workspace (a reused one would reopen earlier tabs)."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?token={self.token}"

    def api(self, path, method="GET"):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_kernel(self, path):
        """End the session (and its kernel) of the notebook at ``path``, if it has one."""
        for session in self.api("sessions"):
            if session["path"] == path:
                self.api(f"sessions/{session['id']}", method="DELETE")


def free_loopback_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_isolated_config(home):
    """Config, data and lab-settings folders of the server's own, under ``home``; returns the environment."""
    config_dir = home / "config"
    settings_dir = home / "lab-settings"
    config_dir.mkdir(parents=True)
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {name: False for name in UNUSED_SERVER_EXTENSIONS}}}))
    for name, values in LAB_SETTINGS.items():
        settings_file = settings_dir / name
        settings_file.parent.mkdir(parents=True, exist_ok=True)
        settings_file.write_text(json.dumps(values))
    env = dict(os.environ)
    env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(config_dir), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), IPYTHONDIR=str(home / "ipython"))
    return env


def lab_command(port, token, root, *extra):
    """``jupyter lab`` on 127.0.0.1:``port`` serving ``root``, quiet and offline (no news, no update checks)."""
    return [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}", "--ServerApp.allow_root=True",
            "--ServerApp.terminals_enabled=False", "--LabApp.news_url=None", *extra,
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly"]


def wait_until_serving(server, url, token, log):
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode} before serving:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer /api/status within {SERVER_START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def stop(server):
    """Stop the server (it shuts its kernels down); if it hangs, kill its whole process group."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


@pytest.fixture(scope="module")
def jupyter_lab(tmp_path_factory):
    """A JupyterLab server serving a copy of assignments 04-06 (notebook and its labcheck folder)."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "course"
    for assignment in ("04-optimizers", "05-vanishing-gradients", "06-bptt"):
        shutil.copytree(SOURCE / assignment, root / assignment,
                        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    env = write_isolated_config(base / "home")
    port, token = free_loopback_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    log = base / "jupyterlab.log"
    command = lab_command(port, token, root)
    with log.open("wb") as log_file:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_serving(server, url, token, log)
        yield JupyterLab(url=url, token=token, root=root)
    finally:
        stop(server)


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium, headless, driven by Playwright."""
    from playwright.sync_api import sync_playwright  # here: the tests skip, rather than fail, without it

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="module")
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
