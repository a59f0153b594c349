"""``learnchain dashboard`` in headless Chromium: the page loads, shows the current height, the
validators and the score curve, and updates as the chain grows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from learnchain.node.home.testnet import find_free_base_port
from learnchain.node.localnet.cluster import LocalCluster
from tests.e2e import EMPTY_BLOCKS

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
VALIDATORS = 3
SCREENSHOT = os.environ.get("LEARNCHAIN_DASHBOARD_SCREENSHOT", "")  # also save a picture here

if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver; "
        "make browser-test installs them)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def dashboard_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("dashboard")
    baselines = root / "baselines.json"
    baselines.write_text(json.dumps({"alone": [0.81, 0.86, 0.88], "pooled": 0.97}))
    with LocalCluster(
        root / "net", VALIDATORS, "--partition", "dirichlet:0.5", *EMPTY_BLOCKS
    ) as net:
        net.start_all()
        net.wait_for(range(VALIDATORS), 3)
        listen = f"127.0.0.1:{find_free_base_port(1, start=net.base_port + 900)}"
        server = subprocess.Popen(
            [sys.executable, "-m", "learnchain", "dashboard", "--node", net[0].address,
             "--listen", listen, "--baselines", str(baselines)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://{listen}/"
            wait_until(lambda: urllib.request.urlopen(url, timeout=2).status == 200, 30)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


def wait_until(check: Any, timeout: float) -> None:
    """Poll ``check`` until it is true (exceptions count as false) or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1100"):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def shown_height(browser: Any) -> int:
    text = browser.find_element("id", "height").text
    return int(text) if text.isdigit() else 0


def test_the_page_shows_the_current_height_and_the_validators(
    browser: Any, dashboard_url: str
) -> None:
    browser.get(dashboard_url)
    wait_until(lambda: shown_height(browser) >= 3, 30)
    rows = browser.find_elements("css selector", "#validators tr")
    assert len(rows) == VALIDATORS
    assert "learnchain-testnet" in browser.find_element("id", "chain").text
    assert browser.find_elements("css selector", "#blocks tr")


def test_the_score_curve_is_drawn_beside_the_baselines(browser: Any, dashboard_url: str) -> None:
    browser.get(dashboard_url)

    def chain_points() -> int:
        path = browser.find_element("id", "chain-score").get_attribute("d") or ""
        return path.count("L") + path.count("M")

    wait_until(lambda: chain_points() >= 2, 90)
    assert len(browser.find_elements("css selector", "#score-chart .alone")) == 3
    assert len(browser.find_elements("css selector", "#score-chart .pooled")) == 1
    assert browser.find_elements("css selector", "#score-chart .validator-score")


def test_the_page_follows_the_chain(browser: Any, dashboard_url: str) -> None:
    browser.get(dashboard_url)
    wait_until(lambda: shown_height(browser) >= 1, 30)
    first = shown_height(browser)
    wait_until(lambda: shown_height(browser) >= first + 3, 60)
    if SCREENSHOT:
        browser.save_screenshot(SCREENSHOT)
