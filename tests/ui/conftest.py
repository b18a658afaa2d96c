"""Fixtures for the dashboard suite: a real asbru gateway (with the bundled mock provider, in
process) started and restarted by the tests, and headless Chromium driven by Playwright.

Environment: ASBRU_BIN (the gateway binary), CHROMIUM (default /usr/bin/chromium), and
SCREENSHOTS (where page screenshots go, default target/ui-screenshots).
"""

import json
import os
import pathlib
import signal
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHOTS = pathlib.Path(os.environ.get("SCREENSHOTS", ROOT / "target" / "ui-screenshots"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """One asbru process over a data directory that survives restarts."""

    def __init__(self, extra_yaml=""):
        self.dir = tempfile.mkdtemp(prefix="asbru-ui-")
        self.port = free_port()
        self.mock_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mock_url = f"http://127.0.0.1:{self.mock_port}"
        self.config = pathlib.Path(self.dir, "asbru.yaml")
        self.config.write_text(
            f"server: {{listen: \"127.0.0.1:{self.port}\", threads: 2, data_dir: \"{self.dir}\", grace_period_seconds: 0, graceful_shutdown_timeout_seconds: 2}}\n"
            f"mock: {{listen: \"127.0.0.1:{self.mock_port}\", chunks: 3}}\n"
            f"config_store: {{enabled: true, type: sqlite, config: {{path: \"{self.dir}/config.db\"}}}}\n"
            f"logs_store: {{enabled: true, type: sqlite, config: {{path: \"{self.dir}/logs.db\"}}}}\n"
            + extra_yaml
        )
        self.proc = None
        self.log = pathlib.Path(self.dir, "gateway.log")

    def start(self):
        binary = os.environ.get("ASBRU_BIN", str(ROOT / "target" / "debug" / "asbru"))
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([binary, "serve", "--config", str(self.config)], stdout=out, stderr=out)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the gateway did not become healthy in 30 s")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self):
        """Stops the gateway and removes its directory (config, databases, log)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def restart(self):
        self.stop()
        return self.start()

    def call(self, method, path, body=None, headers=None):
        """One HTTP call; returns (status, parsed JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        req.add_header("content-type", "application/json")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    pg = context.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def screenshot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def unlabelled_controls(page):
    """Visible inputs, selects and textareas with no label: each is a keyboard and screen-reader
    user's dead end."""
    return page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map((el) => el.outerHTML.slice(0, 120))"""
    )
