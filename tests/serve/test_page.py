"""The page in a real browser: headless Chromium loads it from a server on 127.0.0.1, a generated
video is chosen, and the top-5 bars, the window timeline and the attention map appear; a
screenshot is written (docs/serve_page.png is one, see docs/serving.md). About 3 s.

Skips, saying what to install, without Chromium and its driver (Debian:
``apt-get install chromium chromium-driver``) or without selenium (``pip install selenium``).
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra: pip install 'timesformer[serve]'")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


@contextmanager
def serving(app) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free port of 127.0.0.1; yields its URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@contextmanager
def chromium(width: int = 1280, height: int = 860):
    """A headless Chromium driven by selenium, with the system's browser and driver (nothing
    is downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(
    app, video: Path, out: Path, *, classes: int = 5, timeout: float = 60, size=(1280, 860)
) -> dict:
    """Load the page of ``app``, choose ``video``, wait for the top classes, the timeline and
    the attention map, and save a screenshot of a ``size`` window to ``out``; returns what the
    page shows. (docs/serve_page.png was made with it, from a trained model.)"""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with serving(app) as url, chromium(*size) as driver:
        driver.get(url)
        wait = WebDriverWait(driver, timeout)
        wait.until(lambda d: "classes" in d.find_element(By.ID, "model").text)
        driver.find_element(By.ID, "file").send_keys(str(video))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#top .row")) == classes)
        wait.until(lambda d: d.find_element(By.ID, "attention-box").is_displayed())
        wait.until(
            lambda d: d.execute_script("return document.getElementById('attention').complete")
        )
        shown = {
            "top": [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#top .row .label")],
            "status": driver.find_element(By.ID, "status").text,
            "timeline": driver.find_element(By.ID, "timeline-box").is_displayed(),
        }
        driver.save_screenshot(str(out))
    return shown


@pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="headless Chromium is not installed (Debian: apt-get install chromium chromium-driver)",
)
def test_the_page_shows_the_top_5_of_an_uploaded_video(
    make_client, videos, uploads, tmp_path, monkeypatch
):
    pytest.importorskip("selenium", reason="selenium is not installed: pip install selenium")
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium must not look for drivers online
    from inference.conftest import CLASSES

    app = make_client().app
    out = tmp_path / "serve_page.png"
    shown = screenshot(app, videos[0], out)
    assert sorted(shown["top"]) == sorted(CLASSES)
    assert shown["status"].startswith(f"{videos[0].name}: 4 s of video")
    assert shown["timeline"]  # 4 s is many of the tiny model's 0.27 s windows
    assert out.read_bytes().startswith(b"\x89PNG")
    assert list(uploads.iterdir()) == []
