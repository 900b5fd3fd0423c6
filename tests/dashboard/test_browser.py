"""The dashboard in headless Chromium: sign in with MFA, fleet, device, alerts, customer portal.

Skipped when chromedriver is missing, unless KIZUNA_REQUIRE_BROWSER=1 (CI), where a missing
browser is a failure. Screenshots of every page go to docs/screenshots/.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from dashboard.i18n import t
from devices import service as devices_service
from store.db import connect
from tests.dashboard.conftest import DashboardServer
from tests.dashboard.seed import PASSWORD, Fleet, SeedUser, seed_fleet

pytestmark = pytest.mark.browser

# Test runs must not rewrite tracked files: screenshots go to artifacts/ unless a person asks
# for the documentation's copies to be refreshed (KIZUNA_UPDATE_SCREENSHOTS=1).
_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = (
    _ROOT / "docs" / "screenshots"
    if os.environ.get("KIZUNA_UPDATE_SCREENSHOTS") == "1"
    else _ROOT / "artifacts" / "screenshots"
)
WAIT_S = 20
WINDOW_WIDTH, WINDOW_HEIGHT = 1440, 1000
SCRIPT_NICKNAME = "<img src=x onerror=\"document.title='pwned'\">"


def _chromedriver() -> str | None:
    path = shutil.which("chromedriver")
    if path is None and os.environ.get("KIZUNA_REQUIRE_BROWSER") == "1":
        pytest.fail("KIZUNA_REQUIRE_BROWSER=1 but chromedriver is not installed")
    return path


@pytest.fixture(scope="module")
def fleet(dash_settings: Settings) -> Fleet:
    """A larger fleet than the other modules, so screenshots show a realistic picture."""
    import contextlib

    assert dash_settings.database_url is not None
    with contextlib.closing(connect(dash_settings.database_url, autocommit=True)) as conn:
        fleet = seed_fleet(conn, dash_settings, extra_devices=60)
        devices_service.rename_device(conn, "fleet-001", SCRIPT_NICKNAME)
        return fleet


@pytest.fixture
def browser() -> Iterator[Any]:
    """A fresh headless Chromium with its own profile."""
    driver_path = _chromedriver()
    if driver_path is None:
        pytest.skip("chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="kizuna-chrome-")
    options = webdriver.ChromeOptions()
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}",
        "--lang=en-US",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver: Any, css: str, text: str | None = None) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, WAIT_S)
    if text is not None:
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))


def _text(driver: Any, css: str) -> str:
    """An element's text, retried while live updates replace the element."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(10):
        try:
            return str(driver.find_element("css selector", css).text)
        except StaleElementReferenceException:
            time.sleep(0.2)
    raise AssertionError(f"{css} kept changing")


def _click(driver: Any, css: str) -> None:
    """Click an element, retried while live updates replace it."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(10):
        try:
            driver.find_element("css selector", css).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.2)
    raise AssertionError(f"{css} kept changing")


def _settle(driver: Any) -> None:
    """Wait until no Dash callback is pending (no loading spinner)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_S).until(
        lambda d: not d.find_elements("css selector", "[data-dash-is-loading='true']")
    )


def _shot(driver: Any, name: str) -> None:
    """A screenshot of the whole page (the window grows to the page's height, then shrinks)."""
    _settle(driver)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    taller = height > WINDOW_HEIGHT - 140
    if taller:
        driver.set_window_size(WINDOW_WIDTH, min(height + 140, 2600))
        time.sleep(0.3)  # let plotly redraw at the new size
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    if taller:
        driver.set_window_size(WINDOW_WIDTH, WINDOW_HEIGHT)


def _choose_language(driver: Any, label: str) -> None:
    """Pick a language in the header's language menu, as a person would."""
    driver.find_element("css selector", ".lang-select").click()
    _wait(driver, "body", label)
    driver.find_element("xpath", f"//*[normalize-space(text())='{label}']").click()


def _sign_in(driver: Any, server: DashboardServer, user: SeedUser) -> None:
    driver.get(server.url + "/")
    _wait(driver, "#login-email").send_keys(user.email)
    driver.find_element("css selector", "#login-password").send_keys(PASSWORD)
    driver.find_element("css selector", "#login-otp").send_keys(user.code())
    driver.find_element("css selector", "#login-submit").click()


def test_operator_signs_in_sees_fleet_opens_device_and_acknowledges_alert(
    browser: Any, dashboard: DashboardServer, fleet: Fleet
) -> None:
    driver = browser
    driver.get(dashboard.url + "/")
    _wait(driver, "#login-submit")
    _shot(driver, "login")
    _sign_in(driver, dashboard, fleet.operator)
    _wait(driver, "#kpi-devices", "63")
    _wait(driver, "#fleet-models .main-svg")
    _shot(driver, "fleet")

    driver.get(dashboard.url + "/map")
    _wait(driver, "#fleet-map .scatterlayer, #fleet-map canvas")
    _shot(driver, "map")

    driver.get(dashboard.url + "/devices")
    _wait(driver, "#devices-table a[href='/devices/alice-car']")
    _wait(driver, "#devices-table", SCRIPT_NICKNAME)  # shown as text, never run
    assert driver.title == "Kizuna"
    _shot(driver, "devices")
    driver.find_element("css selector", "#devices-table a[href='/devices/alice-car']").click()
    _wait(driver, "#twin-table", "State of charge (%)")
    _wait(driver, "#device-chart .scatterlayer .trace")
    _wait(driver, "#device-head", "alice-car")
    _wait(driver, "#device-chart .ytitle", "State of charge (%)")
    assert "soc_pct" not in _text(driver, "main")  # people read names, not identifiers
    _shot(driver, "device")
    _choose_language(driver, "日本語")
    _wait(driver, "#twin-table", "充電残量（%）")
    _wait(driver, "#device-head", "電気自動車")
    _wait(driver, "#device-chart .ytitle", "充電残量（%）")
    assert "soc_pct" not in _text(driver, "main")
    _shot(driver, "device_ja")
    _choose_language(driver, "English")
    _wait(driver, "#twin-table", "State of charge (%)")

    driver.get(dashboard.url + "/alerts")
    _wait(driver, "#alerts-table")
    _shot(driver, "alerts")
    first = fleet.alert_ids[0]
    _click(driver, f"button[id*='alert-ack'][id*='\"id\":{first}']")
    _wait(driver, "#alerts-note", f"#{first}: acknowledged")
    _wait(driver, "#alerts-table", "acknowledged")

    driver.get(dashboard.url + f"/customers/{fleet.alice_public_id}")
    _wait(driver, "#customer-health", "Alice Aoki")
    _shot(driver, "customer")
    driver.get(dashboard.url + "/rules")
    _wait(driver, "#rules-table", "ev.low_battery")
    _shot(driver, "rules")


def test_customer_signs_in_and_sees_only_their_products(
    browser: Any, dashboard: DashboardServer, fleet: Fleet
) -> None:
    driver = browser
    _sign_in(driver, dashboard, fleet.alice)
    _wait(driver, ".product-card", "Alice Car")
    _wait(driver, "#feed-list")
    _wait(driver, "#portal-chart .scatterlayer .trace")
    _wait(driver, "#portal-chart-title", "State of charge (%)")
    page = _text(driver, "main")
    assert "Alice Fridge" in page
    assert "Bob" not in page and "bob-car" not in page and "fleet-0" not in page
    assert "soc_pct" not in page and "State of charge: " in page
    _shot(driver, "portal")
    _choose_language(driver, "日本語")
    _wait(driver, ".page-head h2", "マイ製品")
    _wait(driver, "#portal-chart .scatterlayer .trace")
    _wait(driver, "#portal-chart-title", "充電残量（%）")
    _wait(driver, ".product-card", "充電残量: ")
    _shot(driver, "portal_ja")
    driver.get(dashboard.url + "/devices/bob-car")
    _wait(driver, ".page-body", t("common.forbidden", "ja"))  # the language choice persists
