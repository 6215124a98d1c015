"""The course's interactive parts in a real browser: JupyterLab on a free local port (with a token), headless
Chromium driven by Playwright, the chapter run top to bottom in the smoke profile, then the widgets moved.

* 02_siamese_contrastive: drag the margin slider -> the figure and the count of pairs that give gradient change;
* 09_explore: click "random point", pick another encoder, drag the selection slider -> the map changes.

After each move the test checks that the picture on the page changed, that the page raised no JavaScript
error, and that the saved notebook holds no error output (what the kernel raised). Screenshots of every state
go to ``screenshots/browser/`` (git-ignored). The browser is Debian's ``chromium`` from
``scripts/install_system_packages.sh``; without it the test skips, except in CI (``CI=true``), where it fails.
"""
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "screenshots" / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
# what Chromium needs on a closed network and as root (see the project's machine notes)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
RUN_TIMEOUT_MS = 420_000   # a whole chapter in smoke, on 2 shared cores

pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group("browser")]


def _need(what: str, problem: str):
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must have {what}: {problem}")
    pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server over a folder holding copies of the chapters; yields (url, token, folder)."""
    if not Path(CHROMIUM).exists():
        _need("Chromium", "no chromium on this machine: run scripts/install_system_packages.sh")
    try:
        import playwright  # noqa: F401
    except ImportError:
        _need("Playwright", "the playwright package is missing: `make test` installs it (the test extra)")
    folder = tmp_path_factory.mktemp("lab")
    for name in ("02_siamese_contrastive.ipynb", "09_explore.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, folder / name)
    # no "official Jupyter news?" toast over the widgets in the screenshots (and no request for it)
    settings = folder / ".settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "COURSE_PROFILE": "smoke", "COURSE_CHECKPOINTS": str(folder / "checkpoints"),
           "JUPYTER_CONFIG_DIR": str(folder / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(folder / ".workspaces"),
           "JUPYTERLAB_SETTINGS_DIR": str(folder / ".settings"), "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--ServerApp.port_retries=0",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--allow-root"]
    log = open(folder / "lab.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail("JupyterLab did not start:\n" + (folder / "lab.log").read_text()[-3000:])
            time.sleep(0.5)
    try:
        yield url, token, folder
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Chapter:
    """One notebook open in JupyterLab: run it, find its widgets, take screenshots, read its saved outputs."""

    def __init__(self, browser, lab, name: str):
        url, token, self.folder = lab
        self.name = name
        self.page = browser.new_page(viewport={"width": 1500, "height": 1000})
        self.page_errors = []
        self.page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        self.page.goto(f"{url}/lab/tree/{name}.ipynb?token={token}&reset")
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        self.page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=120_000)
        SHOTS.mkdir(parents=True, exist_ok=True)

    def run_all(self, widget_text: str):
        """Run > Run All Cells; return the widget that shows ``widget_text`` once every cell has run."""
        self.page.get_by_role("menuitem", name="Run", exact=True).click()
        self.page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        widget = self.widget(widget_text)
        self.wait_until_done()
        return widget

    def wait_until_done(self):
        """Every code cell has an execution count (none shows ``[*]``), and the kernel is idle."""
        self.page.wait_for_function(
            """() => { const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                       return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)); }""",
            timeout=RUN_TIMEOUT_MS, polling=1000)
        self.page.wait_for_selector("#jp-main-statusbar >> text=Idle", timeout=60_000)

    def widget(self, text: str):
        """The rendered widget area (ipywidgets' view, not its still image) that contains ``text``."""
        area = self.page.locator(".jp-OutputArea-output .widget-vbox", has_text=text).first
        area.wait_for(timeout=RUN_TIMEOUT_MS)
        area.scroll_into_view_if_needed()
        return area

    def shot(self, locator, state: str) -> bytes:
        png = locator.screenshot(path=str(SHOTS / f"{self.name}-{state}.png"))
        return png

    def drag(self, handle, dx: float):
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        self.page.mouse.move(x, y)
        self.page.mouse.down()
        self.page.mouse.move(x + dx, y, steps=8)
        self.page.mouse.up()

    def saved_errors(self) -> list:
        """Save the notebook from the browser, then read the error outputs the kernel produced."""
        self.page.keyboard.press("Control+s")
        path = self.folder / f"{self.name}.ipynb"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            nb = nbformat.read(path, as_version=4)
            if any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
                break
            time.sleep(0.5)
        return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells if c.cell_type == "code"
                for o in c.get("outputs", []) if o.get("output_type") == "error"]

    def close(self):
        self.page.close()


def _changed(page, locator, before: str, timeout_ms: int = 60_000) -> str:
    """Wait until the first image in ``locator`` shows another picture than ``before`` (its src); return it."""
    handle = locator.locator("img").first.element_handle()
    page.wait_for_function("([img, old]) => img.src && img.src !== old && img.complete",
                           arg=[handle, before], timeout=timeout_ms, polling=100)
    return locator.locator("img").first.get_attribute("src")


def test_margin_slider_of_chapter_02(browser, lab):
    ch = Chapter(browser, lab, "02_siamese_contrastive")
    try:
        w = ch.run_all("pairs give gradient")
        src, text = w.locator("img").first.get_attribute("src"), w.inner_text()
        first = ch.shot(w, "margin-slider-initial")
        ch.drag(w.locator(".noUi-handle").first, -60)
        src2 = _changed(ch.page, w, src)
        second = ch.shot(w, "margin-slider-moved")
        assert src2 != src and first != second
        assert w.inner_text() != text, "the count of pairs that give gradient did not change with the margin"
        assert not ch.page_errors, ch.page_errors
        assert not ch.saved_errors()
    finally:
        ch.close()


def test_embedding_explorer_of_chapter_09(browser, lab):
    from playwright.sync_api import expect

    ch = Chapter(browser, lab, "09_explore")
    try:
        w = ch.run_all("random point")
        assert w.locator("button", has_text="random point").is_visible()
        src = w.locator("img").first.get_attribute("src")
        ch.shot(w, "explorer-initial")
        status = w.locator(".widget-html", has_text="query #").first
        query_text = status.inner_text()
        for attempt in range(5):                 # a random point may be the current one: click again
            w.locator("button", has_text="random point").click()
            try:                                 # the status arrives after the map: wait for it, not the map
                expect(status).not_to_have_text(query_text, timeout=10_000)
                break
            except AssertionError:
                assert attempt < 4, "clicking 'random point' never changed the query"
        src = _changed(ch.page, w, src)          # and the map shows the new query
        ch.shot(w, "explorer-random-point")
        options = w.locator("select").first.locator("option").all_inner_texts()
        w.locator("select").first.select_option(options[-1])
        src = _changed(ch.page, w, src)
        ch.shot(w, "explorer-other-encoder")
        ch.drag(w.locator(".widget-hslider", has_text="select x").locator(".noUi-handle").first, 60)
        src = _changed(ch.page, w, src)
        assert "points in the selection" in status.inner_text()
        ch.shot(w, "explorer-selection")
        assert not ch.page_errors, ch.page_errors
        assert not ch.saved_errors()
    finally:
        ch.close()


def test_screenshots_are_not_committed():
    ignored = subprocess.run(["git", "check-ignore", "-q", str(SHOTS / "x.png")], cwd=ROOT)
    assert ignored.returncode == 0, "screenshots/ must be git-ignored"
