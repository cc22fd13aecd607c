"""`circ serve stdlib/zoo/induction.circ` driven in a real browser (headless Chromium).

What a researcher does on the page, checked against the command line: the page loads and
shows f; clicking an arrow selects that edge; switching it off changes f to exactly what
`circ eval --task` prints for the circuit without it; the exported .circ is that circuit
(and `circ eval` on the exported file gives the number on the page); the URL alone brings
the same view back; discovery adds a ranked circuit whose slider moves f along the
measured curve; the diff view shows `circ diff`'s listing. Screenshots of the main views
are written to $CIRCUITLANG_SCREENSHOTS when it is set (`make screenshots` puts them in
docs/images/ for docs/serve.md), else to a temporary folder.

Needs the `browser` extra (selenium, installed in .venv by `make`) and Debian's chromium
and chromium-driver (installed by `make test` as root). The driver runs offline: the
test names /usr/bin/chromedriver, so Selenium Manager never tries to download one. Under
CI a missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs the `browser` extra "
                                "(pip install -e '.[browser]'); `make` installs it in .venv")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from circuitlang.serve.http import make_server, start  # noqa: E402
from circuitlang.serve.workspace import Workspace  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ZOO = ROOT / "stdlib" / "zoo"
WAIT_S = 120


def _browser() -> tuple[str, str] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@pytest.fixture(scope="module")
def browser():
    found = _browser()
    if found is None:
        message = "Chromium or chromedriver is missing: apt-get install -y chromium chromium-driver (as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,950", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page():
    """`circ serve stdlib/zoo/induction.circ`, in process, on a free port."""
    server = make_server(Workspace(ZOO), "induction.circ", "127.0.0.1", 0)
    start(server)
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("CIRCUITLANG_SCREENSHOTS")
    folder = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def idle(driver) -> None:
    """Wait until the page has no request in flight (app.js keeps body[data-busy])."""
    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-busy") == "0")
    error = driver.find_element(By.ID, "error")
    assert not error.is_displayed(), error.text


def click(driver, css: str) -> None:
    driver.find_element(By.CSS_SELECTOR, css).click()
    idle(driver)


def shown_f(driver) -> float:
    return float(driver.find_element(By.ID, "faithfulness").text)


def circ(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "circuitlang", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "CIRC_THREADS": "1"})


def circ_eval_f(file: Path, circuit: str, task: str, out: Path) -> float:
    """The faithfulness `circ eval FILE --task TASK --circuit C` reports."""
    done = circ("eval", str(file), "--task", task, "--circuit", circuit, "--json", str(out),
                "--sensitivity", "off", "--completeness", "0")
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())["checks"][0]["report"]["faithfulness"]


def test_switching_an_edge_off_shows_what_circ_eval_measures(browser, page, shots, tmp_path) -> None:
    browser.get(page + "?file=induction.circ&task=repeat_tokens")
    idle(browser)
    full = circ_eval_f(ZOO / "induction.circ", "induction", "repeat_tokens", tmp_path / "full.json")
    assert shown_f(browser) == pytest.approx(full, abs=5e-5)  # shown to 4 decimals
    browser.save_screenshot(str(shots / "serve_circuit.png"))

    click(browser, "#graph g#e4 polygon")  # the arrowhead of L0.H2 -> L1.H1.k
    assert browser.find_element(By.ID, "details-title").text == "L0.H2 -> L1.H1.k"
    assert "sel=e4" in browser.current_url
    click(browser, "#toggle-selected")
    assert "off=4" in browser.current_url
    assert not browser.find_element(By.CSS_SELECTOR, 'tr[data-edge="4"] input.toggle').is_selected()
    edited = shown_f(browser)
    assert edited < full - 0.3  # the K-composition edge carries half the effect
    browser.save_screenshot(str(shots / "serve_edge_off.png"))

    click(browser, "#export-button")
    exported = browser.find_element(By.ID, "export-text").text
    assert "circuit induction_edited {" in exported and "switched off: L0.H2 -> L1.H1.k" in exported
    file = tmp_path / "edited.circ"
    file.write_text(exported + "\n", encoding="utf-8")
    from circuitlang import load

    original = load(ZOO / "induction.circ").circuit("induction")
    assert load(file).circuit("induction_edited").edges == {e for e in original.edges if str(e) != "L0.H2 -> L1.H1.k"}
    measured = circ_eval_f(file, "induction_edited", f"{ZOO / 'induction.circ'}:repeat_tokens", tmp_path / "e.json")
    assert edited == pytest.approx(measured, abs=5e-5)

    # the URL is the state: a fresh load of it shows the same edited circuit and selection
    url = browser.current_url
    browser.get("about:blank")
    browser.get(url)
    idle(browser)
    assert shown_f(browser) == pytest.approx(edited, abs=1e-9)
    assert browser.find_element(By.ID, "details-title").text == "L0.H2 -> L1.H1.k"
    arrow = browser.find_element(By.CSS_SELECTOR, "#graph g#e4 path:not(.hit)")
    assert arrow.get_attribute("stroke-dasharray")  # drawn dotted: switched off
    click(browser, "#toggle-selected")  # and back on
    assert shown_f(browser) == pytest.approx(full, abs=5e-5) and "off=" not in browser.current_url


def test_clicking_a_node_shows_its_minimality_and_per_example_effects(browser, page) -> None:
    browser.get(page + "?file=induction.circ&task=repeat_tokens_zero&circuit=induction")
    idle(browser)
    click(browser, "#graph g#n1 text")  # the label of L0.H2
    details = browser.find_element(By.ID, "details").text
    assert "L0.H2" in details and "Δf without this node" in details and "256 examples" in details
    bars = browser.find_elements(By.CSS_SELECTOR, "#effects rect")
    assert len(bars) == 30 and any(float(b.get_attribute("height")) > 0 for b in bars)


def test_discovery_and_the_slider_over_its_curve(browser, page, shots) -> None:
    browser.get(page + "?file=induction.circ&task=repeat_tokens_zero")
    idle(browser)
    Select(browser.find_element(By.ID, "method")).select_by_value("exact")
    click(browser, "#discover-button")
    assert "circuit=exact_repeat_tokens_zero" in browser.current_url
    slider = browser.find_element(By.ID, "k-slider")
    assert slider.is_displayed()
    # the slider starts at the smallest measured k reaching 0.95: the 7 planted edges
    assert browser.find_element(By.ID, "k-value").text == "7"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#edge-table tbody tr")) == 7
    assert shown_f(browser) >= 0.95
    browser.save_screenshot(str(shots / "serve_discovered.png"))
    curve_f = browser.find_element(By.ID, "k-f").text  # "f(7) = 1.0007"
    assert curve_f.startswith("f(7) = ") and float(curve_f.split("= ")[1]) == pytest.approx(shown_f(browser), abs=1e-4)
    browser.execute_script("const s = document.getElementById('k-slider'); s.value = '4';"
                           "s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change'));")
    idle(browser)
    assert "k=4" in browser.current_url and browser.find_element(By.ID, "k-value").text == "4"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#edge-table tbody tr")) == 4
    at4 = browser.find_element(By.ID, "k-f").text
    assert float(at4.split("= ")[1]) == pytest.approx(shown_f(browser), abs=1e-4) and shown_f(browser) < 0.95


def test_the_diff_view_is_circ_diff(browser, page, shots) -> None:
    browser.get(page + "?file=induction.circ&view=diff&a=induction&b=induction_resample")
    idle(browser)
    text = browser.find_element(By.ID, "diff-text").text
    done = circ("diff", "stdlib/zoo/induction.circ:induction", "stdlib/zoo/induction.circ:induction_resample")
    # the same listing; the page names the circuits, the command their files and models
    assert text.strip().splitlines()[:2] == ["--- induction", "+++ induction_resample"]
    assert text.strip().splitlines()[2:] == done.stdout.strip().splitlines()[2:]
    assert browser.find_elements(By.CSS_SELECTOR, "#diff-svg svg g.edge")
    browser.save_screenshot(str(shots / "serve_diff.png"))
