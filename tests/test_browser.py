"""A learner's first minutes, in a real browser: JupyterLab opens a notebook, runs a
cell, and the course package answers from the kernel.

Uses Debian's Chromium (package `chromium`) driven by Playwright; never a browser
Playwright downloads.  Skips where Chromium or Playwright is absent; `.ci/run`
installs both.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from notebook_tools import ROOT, need_system_package

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _chromium():
    need_system_package("chromium")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on 127.0.0.1 serving a copy of notebooks/ (the learner's files stay untouched)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", root)
    token = "browser-test"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}",
         "--ServerApp.allow_root=True", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": os.fspath(tmp_path / "rt"),
             "JUPYTER_CONFIG_DIR": os.fspath(tmp_path / "cfg"), "OMP_NUM_THREADS": "1"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5).read()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                os.killpg(proc.pid, 15)
                pytest.fail("JupyterLab did not start")
            time.sleep(1)
    yield base, token
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def test_a_learner_opens_a_notebook_and_runs_a_cell(lab, tmp_path):
    base, token = lab
    shot = tmp_path / "lab.png"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{base}/lab/tree/02_attention/02_attention.ipynb?token={token}", timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            # the notebook's title is rendered markdown
            page.locator(".jp-Notebook .jp-RenderedMarkdown h1", has_text="Attention").first.wait_for(timeout=60_000)
            # add a cell at the top, ask the kernel about the course package, run it
            page.locator(".jp-Notebook .jp-Cell").first.click()
            page.keyboard.press("Escape")
            page.keyboard.press("a")
            page.keyboard.press("Enter")
            page.wait_for_timeout(500)
            page.keyboard.type("import transformer_course.attention as A; print('rows sum to', round(float(A.softmax([[1.0, 2.0, 3.0]]).sum()), 6))")
            page.keyboard.press("Shift+Enter")
            try:
                page.locator(".jp-OutputArea-output", has_text="rows sum to 1.0").first.wait_for(timeout=120_000)
            finally:
                page.screenshot(path=os.fspath(shot))
                keep = os.environ.get("TRANSFORMER_COURSE_SCREENSHOTS")
                if keep:
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    shutil.copy(shot, Path(keep) / "lab.png")
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
