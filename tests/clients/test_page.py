"""The web page of queries and workers (`--http-listen`), driven in a real
headless Chromium (Debian's `chromium` and `chromium-driver`, through selenium):
the page loads, a long query appears with a scanned-rows figure that advances,
its detail shows the SQL and the running plan, the cancel button ends it with
57014 in the client, and with users configured the page shows a user only
their own queries. Screenshots are saved under `VIVACE_TEST_ARTIFACTS`
(default `$CARGO_TARGET_DIR/test-artifacts`)."""

import os
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg2
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from conftest import REPO, Server, free_port, vivace_binary

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
LONG_QUERY = "SELECT max(v) FROM generate_series(1, 100000000000) AS t(v)"


def artifacts() -> Path:
    default = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "test-artifacts"
    path = Path(os.environ.get("VIVACE_TEST_ARTIFACTS", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser():
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), \
        "scripts/test installs Debian's chromium and chromium-driver"
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(what, check, timeout=30):
    """Poll `check` until it returns something truthy."""
    deadline = time.time() + timeout
    while True:
        try:
            found = check()
        except StaleElementReferenceException:
            found = None  # the page redrew its table under us
        if found:
            return found
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def query_row(driver, sql_part, state=None):
    """The cells (by class) of the first row of the query table whose SQL holds `sql_part`."""
    for row in driver.find_elements(By.CSS_SELECTOR, "#queries tbody tr.query"):
        if sql_part in row.find_element(By.CSS_SELECTOR, "td.sql").get_attribute("title") and (
            state is None or row.get_attribute("data-state") == state
        ):
            return row
    return None


def scanned_rows(row) -> int:
    text = row.find_element(By.CSS_SELECTOR, "td.scanned").text
    return int(re.sub(r"[^0-9]", "", text.split(" rows")[0]))


class LongQuery(threading.Thread):
    """LONG_QUERY on its own connection; `error` is what it ended with."""

    def __init__(self, dsn):
        super().__init__(daemon=True)
        self.dsn, self.error = dsn, None

    def run(self):
        conn = psycopg2.connect(self.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(LONG_QUERY)
        except psycopg2.Error as e:
            self.error = e
        finally:
            conn.close()


def test_the_page_shows_a_long_query_advancing_and_cancels_it(browser):
    with tempfile.TemporaryDirectory(prefix="vivace-page-") as tmp:
        http = free_port()
        server = Server(Path(tmp), "--http-listen", f"127.0.0.1:{http}")
        try:
            long = LongQuery(server.dsn() + " application_name=page-test")
            long.start()
            browser.get(f"http://127.0.0.1:{http}/")
            assert browser.title == "Vivace: queries and workers"
            # The nodes: the coordinator and its embedded workers.
            roles = wait_for("the nodes table", lambda: sorted(
                td.text for td in browser.find_elements(By.CSS_SELECTOR, "#nodes tbody td:nth-child(2)")))
            assert roles[0] == "coordinator" and set(roles[1:]) == {"worker"} and len(roles) > 1, roles
            row = wait_for("the long query running",
                           lambda: query_row(browser, "generate_series", "running"))
            query_id = row.get_attribute("data-id")
            assert re.fullmatch(r"\d{8}_\d{6}_\d{5}", query_id), query_id
            # The scanned-rows figure advances as the page refreshes.
            first = wait_for("rows scanned",
                             lambda: scanned_rows(query_row(browser, "generate_series", "running")))
            wait_for("rows scanned to advance",
                     lambda: scanned_rows(query_row(browser, "generate_series", "running")) > first)
            wait_for("one running query on the card",
                     lambda: browser.find_element(By.ID, "running").text == "1")

            # The detail: the SQL as sent, and the plan running it.
            query_row(browser, "generate_series", "running").click()
            wait_for("the detail", lambda: browser.find_element(By.ID, "detail").is_displayed())
            assert browser.find_element(By.ID, "detail-id").text == query_id
            assert browser.find_element(By.ID, "detail-sql").text == LONG_QUERY
            wait_for("the plan", lambda: "AggregateExec" in browser.find_element(By.ID, "detail-plan").text)
            # It runs on the coordinator alone: no tasks on workers to list.
            wait_for("the tasks note",
                     lambda: browser.find_element(By.ID, "detail-no-tasks").is_displayed())
            assert not browser.find_element(By.ID, "detail-tasks").is_displayed()
            browser.save_screenshot(str(artifacts() / "page-running-query.png"))

            # Cancel from the page: the client gets 57014, the row says cancelled.
            # Found and clicked in one go: the table redraws every second, and
            # a button found just before a redraw is stale by the click.
            def click_cancel():
                query_row(browser, "generate_series", "running").find_element(
                    By.CSS_SELECTOR, "button.cancel").click()
                return True

            wait_for("the cancel button", click_cancel)
            long.join(30)
            assert not long.is_alive(), "the cancelled query did not end"
            assert long.error is not None and long.error.pgcode == "57014", long.error
            wait_for("the row to say cancelled",
                     lambda: query_row(browser, "generate_series", "cancelled"))
            wait_for("no running query on the card",
                     lambda: browser.find_element(By.ID, "running").text == "0")
            browser.save_screenshot(str(artifacts() / "page-cancelled-query.png"))
        finally:
            server.stop()


def verifier(user, password):
    out = subprocess.run([str(vivace_binary()), "password", user], input=password,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_with_users_the_page_asks_for_a_login_and_shows_only_ones_own_queries(browser):
    with tempfile.TemporaryDirectory(prefix="vivace-page-users-") as tmp:
        config = Path(tmp) / "vivace.toml"
        config.write_text(f"[users]\n{verifier('ann', 'ann pw')}\n{verifier('bob', 'bob pw')}\n")
        http = free_port()
        server = Server(Path(tmp), "--config", str(config), "--http-listen", f"127.0.0.1:{http}")
        try:
            for user in ("ann", "bob"):
                conn = psycopg2.connect(server.dsn().replace("user=vivace", f"user={user}")
                                        + f" password='{user} pw'")
                with conn.cursor() as cur:
                    cur.execute(f"SELECT '{user}-marker'")
                    assert cur.fetchall() == [(f"{user}-marker",)]
                conn.close()
            # Without credentials the browser gets the 401 page, not the list.
            browser.get(f"http://127.0.0.1:{http}/")
            assert "Vivace: queries and workers" not in browser.title
            assert not browser.find_elements(By.CSS_SELECTOR, "#queries")
            # With ann's: her query, not bob's.
            browser.get(f"http://ann:ann%20pw@127.0.0.1:{http}/")
            wait_for("ann's query", lambda: query_row(browser, "ann-marker"))
            assert browser.find_element(By.ID, "viewer").text == "ann"
            assert query_row(browser, "bob-marker") is None
            users = {td.text for td in browser.find_elements(
                By.CSS_SELECTOR, "#queries tbody tr.query td:nth-child(2)")}
            assert users == {"ann"}, users
        finally:
            server.stop()
