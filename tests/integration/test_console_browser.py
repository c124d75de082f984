"""The console in headless Chromium (Debian chromium + chromium-driver, driven by Selenium).

A subprocess serves the console over the small site with live fake telemetry; the browser logs
in, sees the floor with racks coloured, opens a rack by clicking it, watches the floor update
without reload, and checks that a viewer's direct POST to an admin callback is refused.
Screenshots go to artifacts/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.console.support import PASSWORDS

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-dev-shm-usage", "--window-size=1600,1000")


def start_console(site: Path, refresh_s: float = 1.0, timeout_s: float = 90.0, extra: tuple[str, ...] = ()):
    """Start tests/integration/console_server.py; returns (process, base url)."""
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "integration" / "console_server.py"),
                             "--site", str(site), "--refresh", str(refresh_s), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("READY "):
            return proc, f"http://127.0.0.1:{int(line.split()[1])}"
        if proc.poll() is not None:
            raise RuntimeError(f"console server exited: {proc.stderr.read()[-2000:]}")
    proc.kill()
    raise TimeoutError("console server did not start")


def make_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS:
        opts.add_argument(f)
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


@pytest.fixture(scope="module")
def console_url():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip(f"needs Debian chromium and chromium-driver ({CHROMIUM}, {DRIVER}); see .ci/apt.d/console.txt")
    proc, url = start_console(REPO / "tests" / "data" / "small-site.yaml")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def alarm_console_url():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip(f"needs Debian chromium and chromium-driver ({CHROMIUM}, {DRIVER}); see .ci/apt.d/console.txt")
    proc, url = start_console(REPO / "tests" / "data" / "small-site.yaml", extra=("--alarms",))
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def browser():
    drv = make_driver()
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def wait_for(drv, css: str, timeout: float = 20.0, text: str | None = None):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    w = WebDriverWait(drv, timeout)
    if text is not None:
        w.until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
    return w.until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))


def text_of(drv, element_id: str, tries: int = 20) -> str:
    """An element's text; the live page may re-render it between lookup and read, so retry."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(tries):
        try:
            return drv.find_element(By.ID, element_id).text
        except (StaleElementReferenceException, NoSuchElementException):
            time.sleep(0.1)
    return drv.find_element(By.ID, element_id).text


def unstale(fn, tries: int = 20):
    """Run `fn` (a lookup and a read or click) again when the live page re-rendered its element."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(tries - 1):
        try:
            return fn()
        except StaleElementReferenceException:
            time.sleep(0.1)
    return fn()


def log_in(drv, url: str, user: str) -> None:
    from selenium.webdriver.common.by import By

    drv.get(url + "/")
    wait_for(drv, "#login-user")
    assert "/login" in drv.current_url
    drv.find_element(By.ID, "login-user").send_keys(user)
    drv.find_element(By.ID, "login-password").send_keys(PASSWORDS[user])
    drv.find_element(By.ID, "login-submit").click()
    wait_for(drv, "#shell-user", text=f"{user} ({user})")


# Colour of the heatmap cell (row i, column j) of the first hall, read back from the image Plotly drew.
CELL_RGB_JS = """
const [i, j, done] = arguments;
const gd = document.querySelector('#floor-map .js-plotly-plot');
const img = gd.querySelector('.hm image');
const tr = gd._fullData[0];
const rows = tr.z.length, cols = tr.z[0].length;
const im = new Image();
im.onload = () => {
  const c = document.createElement('canvas'); c.width = im.width; c.height = im.height;
  const ctx = c.getContext('2d'); ctx.drawImage(im, 0, 0);
  const x = Math.floor((j + 0.5) / cols * im.width), y = Math.floor((i + 0.5) / rows * im.height);
  done(Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)));
};
im.src = img.getAttribute('href') || img.getAttribute('xlink:href');
"""

CELL_XY_JS = """
const gd = document.querySelector('#floor-map .js-plotly-plot');
const fl = gd._fullLayout, xa = fl.xaxis, ya = fl.yaxis, r = gd.getBoundingClientRect();
return [r.left + xa._offset + xa.d2p(arguments[0]), r.top + ya._offset + ya.d2p(arguments[1])];
"""


def test_floor_renders_coloured_and_opens_a_rack(console_url, browser, artifacts_dir):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.by import By

    log_in(browser, console_url, "viewer")
    wait_for(browser, "#floor-map .hm image", timeout=30)
    wait_for(browser, "#floor-kpi-it", text="kW")
    wait_for(browser, "#floor-kpi-pue", text="1.30")
    browser.save_screenshot(str(artifacts_dir / "console-floor.png"))

    # R1-01 (33 °C inlet) is drawn red, R1-02 (24 °C) blue-ish: the racks are coloured by inlet.
    hot = browser.execute_async_script(CELL_RGB_JS, 0, 0)
    cool = browser.execute_async_script(CELL_RGB_JS, 0, 1)
    assert hot[0] > 150 and hot[0] > hot[2] + 60, hot
    assert cool[2] >= cool[0], cool

    # colour by power instead: the figure changes without reload
    browser.find_element(By.CSS_SELECTOR, "#floor-colour-by input[value='power']").click()
    wait_for(browser, "#floor-map .colorbar", text="Rack power")

    # the floor updates live: the data stamp changes without a reload
    first = text_of(browser, "floor-updated")
    deadline = time.monotonic() + 15
    while text_of(browser, "floor-updated") == first and time.monotonic() < deadline:
        time.sleep(0.3)
    assert text_of(browser, "floor-updated") != first

    # click R1-02's cell: the rack view opens
    x, y = browser.execute_script(CELL_XY_JS, 2, "R1")
    action = ActionBuilder(browser)
    action.pointer_action.move_to_location(int(x), int(y)).click()
    action.perform()
    wait_for(browser, "#rack-title", text="Rack R1-02")
    wait_for(browser, "#rack-servers", text="R1-02-S01")
    assert browser.current_url.endswith("/rack/R1-02")
    browser.save_screenshot(str(artifacts_dir / "console-rack.png"))


POST_JS = """
const [payload, done] = arguments;
fetch('/_dash-update-component', {method: 'POST', headers: {'Content-Type': 'application/json'},
  body: JSON.stringify(payload)}).then(r => r.text().then(t => done([r.status, t])));
"""


def test_viewer_cannot_change_users_even_by_direct_post(console_url, browser, artifacts_dir):
    from selenium.webdriver.common.by import By

    from tests.console.test_console_auth import save_user_payload

    log_in(browser, console_url, "viewer")
    assert not browser.find_elements(By.ID, "shell-nav-admin_users")
    browser.get(console_url + "/admin/users")
    wait_for(browser, "#admin_users-forbidden")
    status, body = browser.execute_async_script(POST_JS, save_user_payload("mallory", "long-enough-pw", "admin"))
    assert status == 403, body
    browser.save_screenshot(str(artifacts_dir / "console-viewer-refused.png"))

    # an admin can, through the page
    browser.find_element(By.ID, "shell-logout").click()
    log_in(browser, console_url, "admin")
    browser.get(console_url + "/admin/users")
    wait_for(browser, "#admin_users-name")
    browser.find_element(By.ID, "admin_users-name").send_keys("night-shift")
    browser.find_element(By.ID, "admin_users-password").send_keys("a-long-password")
    browser.find_element(By.ID, "admin_users-save").click()
    wait_for(browser, "#admin_users-ok", text="Created night-shift (viewer)")
    assert "mallory" not in text_of(browser, "admin_users-table")
    browser.save_screenshot(str(artifacts_dir / "console-admin-users.png"))


def test_devices_page_shows_charts_and_events(console_url, browser, artifacts_dir):
    log_in(browser, console_url, "operator")
    browser.get(console_url + "/devices?name=R2-03-S02:3")
    wait_for(browser, "#devices-name", text="R2-03-S02:3")
    wait_for(browser, "#devices-chart-accel_power_w .main-svg")
    wait_for(browser, "#devices-events-table", text="XID 79")
    wait_for(browser, "#devices-tree", text="R2-03-S02")  # its branch opened down to the accelerators
    wait_for(browser, "#devices-tree .devices-selected", text="3: rebellions RBLN-CA22")
    wait_for(browser, "#devices-grid .ag-row", text="R2-03-S02")
    browser.save_screenshot(str(artifacts_dir / "console-devices.png"))


ALARM_ROW = "//div[contains(@class,'ag-center-cols-container')]//div[contains(@class,'ag-row')][.//div[@col-id='component' and normalize-space()='{}']]"


def test_alarms_acknowledge_as_operator_viewer_refused(alarm_console_url, browser, artifacts_dir):
    from selenium.webdriver.common.by import By

    url = alarm_console_url
    log_in(browser, url, "viewer")
    browser.get(url + "/alarms")
    wait_for(browser, "#alarms-grid .ag-row", timeout=30)
    wait_for(browser, "#alarms-grid", text="R2-01-S01:2")
    ack = browser.find_element(By.ID, "alarms-ack")
    assert not ack.is_enabled()
    deps = browser.execute_async_script("const d=arguments[0]; fetch('/_dash-dependencies').then(r=>r.json()).then(d)")
    output = next(d["output"] for d in deps if d["inputs"][0]["id"] == "alarms-ack")
    alarm_id = unstale(lambda: browser.find_element(By.XPATH, ALARM_ROW.format("R2-01-S01:2")).get_attribute("row-id"))
    payload = {"output": output, "outputs": {"id": "alarms-result", "property": "children", "allow_duplicate": True},
               "inputs": [{"id": "alarms-ack", "property": "n_clicks", "value": 1}],
               "changedPropIds": ["alarms-ack.n_clicks"],
               "state": [{"id": "alarms-grid", "property": "selectedRows", "value": [{"id": alarm_id}]}]}
    status, body = browser.execute_async_script(POST_JS, payload)
    assert status == 403, body
    browser.save_screenshot(str(artifacts_dir / "console-alarms-viewer.png"))

    browser.find_element(By.ID, "shell-logout").click()
    log_in(browser, url, "operator")
    browser.get(url + "/alarms")
    wait_for(browser, "#alarms-grid", text="R2-01-S01:2")
    unstale(lambda: browser.find_element(By.XPATH, ALARM_ROW.format("R2-01-S01:2") + "//div[@col-id='problem']").click())
    browser.find_element(By.ID, "alarms-ack").click()
    wait_for(browser, "#alarms-ok", text="operator acknowledged 1 alarm(s)")
    wait_for(browser, "#alarms-grid", text="active-acknowledged")
    row_text = unstale(lambda: browser.find_element(By.XPATH, ALARM_ROW.format("R2-01-S01:2")).text)
    assert "operator" in row_text and "active-acknowledged" in row_text
    browser.save_screenshot(str(artifacts_dir / "console-alarms-acknowledged.png"))


INCIDENT_ROW = ("//div[@id='incidents-grid']//div[contains(@class,'ag-center-cols-container')]"
                "//div[contains(@class,'ag-row')][.//div[@col-id='root' and normalize-space()='{}']]")


def outcome(drv, expect: str, timeout: float = 30.0) -> None:
    """Wait for the incident page's result: success naming `expect`, or fail at once with the
    error the page shows (an error message also names the step, so waiting for the step's name
    alone would take a refusal for a success)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok, err = text_of(drv, "incident-result"), ""
        if drv.find_elements("id", "incident-error"):
            err = ok
        if err:
            pytest.fail(f"the console refused {expect!r}: {err}")
        if drv.find_elements("id", "incident-ok") and expect in ok:
            return
        time.sleep(0.2)
    pytest.fail(f"no result for {expect!r} within {timeout} s; the page shows {text_of(drv, 'incident-result')!r}")


def test_incident_driven_through_its_runbook_to_resolution(alarm_console_url, browser, artifacts_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url = alarm_console_url
    log_in(browser, url, "operator")
    browser.get(url + "/incidents")
    wait_for(browser, "#incidents-grid", text="CRAC-1", timeout=30)
    # most severe first: the grid's default sort puts a critical incident above the major CRAC-1 one
    sevs = unstale(lambda: [e.find_element(By.CSS_SELECTOR, "[col-id='severity']").text for e in sorted(
        browser.find_elements(By.CSS_SELECTOR, "#incidents-grid .ag-center-cols-container .ag-row"),
        key=lambda r: int(r.get_attribute("row-index")))])  # rows sit in the DOM unordered; row-index is the order
    assert sevs and sevs == sorted(sevs, key=["critical", "major", "minor", "warning"].index), sevs
    row = INCIDENT_ROW.format("CRAC-1")
    incident_id = unstale(lambda: browser.find_element(By.XPATH, row).get_attribute("row-id"))
    # acknowledged from the list, by an operator
    unstale(lambda: next(e for e in browser.find_elements(
        By.CSS_SELECTOR, f"#incidents-grid div[row-id='{incident_id}'] .ag-checkbox-input-wrapper")
        if e.is_displayed()).click())
    browser.find_element(By.ID, "incidents-ack-note").send_keys("looking at CRAC-1")
    browser.find_element(By.ID, "incidents-ack").click()
    wait_for(browser, "#incidents-ok", text="operator acknowledged 1 incident")
    wait_for(browser, "#incidents-grid", text="acknowledged")
    browser.save_screenshot(str(artifacts_dir / "console-incidents.png"))
    unstale(lambda: browser.find_element(By.XPATH, row + "//div[@col-id='link']//a").click())
    wait_for(browser, "#incident-title", text="CRAC-1")
    wait_for(browser, "#incident-alarms-table", text="root cause")
    wait_for(browser, "#incident-impact-accels", text="accelerators affected")  # the rows CRAC-1 cools

    def step(action: str, step_id: str, note: str = "") -> None:
        wait_for(browser, f"#incident-step-pick option[value='{step_id}']")
        Select(browser.find_element(By.ID, "incident-step-pick")).select_by_value(step_id)
        # the panel follows the selected step, and offers the control this step needs
        WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, f"incident-{action}").is_displayed())
        box = browser.find_element(By.ID, "incident-step-note")
        box.clear()
        if note:
            box.send_keys(note)
        # the panel re-renders as the step is picked: a click can land on the layout still moving
        # ("element click intercepted", which does not reach the button); try until it lands
        from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException

        def press(d) -> bool:
            button = d.find_element(By.ID, f"incident-{action}")
            d.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
            try:
                button.click()
            except (ElementClickInterceptedException, StaleElementReferenceException):
                return False
            return True

        WebDriverWait(browser, 20, poll_frequency=0.25).until(press)
        outcome(browser, step_id)

    wait_for(browser, "#incident-state-badge", text="acknowledged")
    assert browser.current_url.endswith(f"/incident/{incident_id}")

    wait_for(browser, "#incident-runbook-pick option[value='crac-failure']")
    Select(browser.find_element(By.ID, "incident-runbook-pick")).select_by_value("crac-failure")
    browser.find_element(By.ID, "incident-runbook-start").click()
    outcome(browser, "started runbook crac-failure")
    wait_for(browser, "#incident-steps-table", text="read-unit-panel")
    # the first step is preselected with its instruction from the runbook, and only its controls
    wait_for(browser, "#incident-step-instruction", text="Read the fault code on the unit's local panel")
    wait_for(browser, "#incident-step-expected", text="A fault code noted")
    assert browser.find_element(By.ID, "incident-step-confirm").is_displayed()
    assert not browser.find_element(By.ID, "incident-step-execute").is_displayed()
    assert not browser.find_element(By.ID, "incident-run-signoff").is_displayed()
    browser.save_screenshot(str(artifacts_dir / "console-incident-runbook.png"))
    step("step-confirm", "read-unit-panel", "fault E42 on the panel")
    step("step-confirm", "peers-running", "CRAC-2 running")
    step("step-skip", "caps-possible", "no agent control API in this drill")
    step("step-skip", "notify-facilities", "ticket opened by phone")
    step("step-confirm", "remote-restart", "restart tripped again, waiting for HVAC")
    step("step-skip", "cap-zone", "inlets under 32 degC")
    step("step-skip", "caps-hold", "nothing capped")
    step("step-skip", "unit-running", "unit replaced tomorrow; load moved")
    step("step-skip", "inlets-recovered", "zone inlets watched by the NOC")
    # every step finished: now, and only now, the sign-off is offered
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, "incident-run-signoff").is_displayed())
    signoff = browser.find_element(By.ID, "incident-run-signoff")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", signoff)
    signoff.click()
    outcome(browser, "signed off")
    wait_for(browser, "#incident-run-state", text="completed")

    Select(browser.find_element(By.ID, "incident-state")).select_by_value("resolved")
    note = browser.find_element(By.ID, "incident-note")
    note.clear()
    note.send_keys("<script>alert(1)</script> handed over to day shift")
    browser.find_element(By.ID, "incident-set-state").click()
    outcome(browser, "set the incident to resolved")
    wait_for(browser, "#incident-state-badge", text="resolved")
    wait_for(browser, "#incident-timeline-table", text="<script>alert(1)</script> handed over")  # shown as text
    browser.save_screenshot(str(artifacts_dir / "console-incident-resolved.png"))


# (path, an element that shows the page rendered with data, text it must hold or None)
PAGES = [
    ("/", "#floor-map .hm image", None),
    ("/alarms", "#alarms-grid .ag-row", None),
    ("/incidents", "#incidents-grid .ag-row", None),
    ("/history", "#history-kpis", None),
    ("/fleet", "#fleet-bars", None),
    ("/devices?name=R2-01-S01:2", "#devices-name", "R2-01-S01:2"),
    ("/rack/R1-01", "#rack-title", "R1-01"),
    ("/admin", "#admin-silences", None),
    ("/admin/users", "#admin_users-name", None),
]


def test_every_page_renders_and_is_screenshotted(alarm_console_url, browser, artifacts_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url = alarm_console_url
    log_in(browser, url, "admin")
    for path, css, text in PAGES:
        browser.get(url + path)
        wait_for(browser, css, timeout=30, text=text)
        name = path.strip("/").split("?")[0].replace("/", "-") or "floor"
        browser.save_screenshot(str(artifacts_dir / f"console-page-{name}.png"))
    # admin: a maintenance window created from the form, then expired from its grid row
    browser.get(url + "/admin")
    wait_for(browser, "#admin-mw-component")
    browser.find_element(By.ID, "admin-mw-component").send_keys("CRAC-2")
    browser.find_element(By.ID, "admin-mw-reason").send_keys("filter change")
    browser.find_element(By.ID, "admin-mw-create").click()
    wait_for(browser, "#admin-ok", text="on CRAC-2")
    wait_for(browser, "#admin-silences-grid", text="filter change")
    browser.save_screenshot(str(artifacts_dir / "console-page-admin-silence.png"))
    cell = "//div[@id='admin-silences-grid']//div[contains(@class,'ag-center-cols-container')]//div[@col-id='reason' and normalize-space()='filter change']"
    unstale(lambda: browser.find_element(By.XPATH, cell).click())
    browser.find_element(By.ID, "admin-expire").click()
    wait_for(browser, "#admin-ok", text="admin expired")
    WebDriverWait(browser, 20).until(lambda d: "filter change" not in text_of(d, "admin-silences-grid"))

    browser.get(url + "/incidents")
    wait_for(browser, "#incidents-grid .ag-row", timeout=30)
    iid = unstale(lambda: browser.find_element(By.CSS_SELECTOR, "#incidents-grid .ag-center-cols-container .ag-row")
                  .get_attribute("row-id"))
    browser.get(url + f"/incident/{iid}")
    wait_for(browser, "#incident-title", timeout=30)
    browser.save_screenshot(str(artifacts_dir / "console-page-incident.png"))


def test_wallboard_has_no_navigation_is_dark_and_rotates(alarm_console_url, browser, artifacts_dir):
    from selenium.webdriver.common.by import By

    url = alarm_console_url
    log_in(browser, url, "viewer")
    browser.get(url + "/wallboard?rotate=3")
    wait_for(browser, "#wallboard-view-name", timeout=30, text="Floor")
    wait_for(browser, "#wallboard-kpi-it", text="kW")
    assert not browser.find_element(By.ID, "shell-bar").is_displayed()  # no navigation on the wall
    bg = browser.execute_script("return getComputedStyle(document.getElementById('wallboard')).backgroundColor")
    assert bg == "rgb(11, 15, 20)", bg
    size = browser.execute_script("return parseFloat(getComputedStyle(document.getElementById('wallboard-kpi-it')).fontSize)")
    assert size >= 40, size  # readable across the room
    browser.save_screenshot(str(artifacts_dir / "console-wallboard-floor.png"))
    wait_for(browser, "#wallboard-view-name", timeout=20, text="Open incidents")  # rotates on its own
    wait_for(browser, "#wallboard-incidents", text="R2-01-S01:2")  # the XID 79 no other test resolves
    browser.save_screenshot(str(artifacts_dir / "console-wallboard-incidents.png"))
    wait_for(browser, "#wallboard-view-name", timeout=20, text="Floor")
    # leaving the wallboard brings the navigation back
    browser.get(url + "/alarms")
    wait_for(browser, "#alarms-grid")
    assert browser.find_element(By.ID, "shell-bar").is_displayed()
