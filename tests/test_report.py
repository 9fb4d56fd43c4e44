"""The HTML report of a smoke run: `snakemake --report` works, and the page, opened in headless
Chromium (Debian's chromium + chromium-driver through selenium, never a downloaded browser), loads
without console errors and shows every figure when it is clicked, as a reader would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# As the workplace's own browser probe: no sandbox as root, no GPU, and no background network
# traffic (this machine has no network; Chromium would log refused connections).
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
]
WAIT_S = 20

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report_html(smoke_run: Path, smoke_snakemake) -> Path:
    output = smoke_snakemake(smoke_run, "--report", "results/report.html", timeout_s=600)
    # docutils reports a caption it cannot render (an undefined |substitution|, bad markup) on the output
    rst_problems = [line for line in output.splitlines() if re.search(r"\((ERROR|SEVERE|WARNING)/\d\)", line)]
    assert not rst_problems, f"captions that do not render: {rst_problems}"
    report = smoke_run / "results" / "report.html"
    assert report.is_file() and report.stat().st_size > 0
    return report


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by selenium, with a fresh profile; its console log is readable."""
    if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip("Debian's chromium and chromium-driver are not installed and cannot be")
        subprocess.run(
            ["timeout", "-k", "10", "1500", "bash", str(REPO_ROOT / ".ci" / "install-system-packages.sh")],
            check=True,
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in CHROMIUM_ARGS:
        options.add_argument(arg)
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def open_report(driver, report: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(report.as_uri())
    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.execute_script("return document.querySelector('#loading-screen').style.display") == "none"
    )


def click_text(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//a[normalize-space()='{text}']").click()


def displayed_size(path: str):
    """A wait condition: (natural width, height) of the shown image of result `path`, once loaded."""

    def condition(driver) -> list[int] | None:
        return driver.execute_script(
            "const img = Array.from(document.images).find(i => i.src === results[arguments[0]].data_uri);"
            "return img && img.complete ? [img.naturalWidth, img.naturalHeight] : null;",
            path,
        )

    return condition


def test_report_loads_without_console_errors_and_lists_the_results(
    report_html: Path, browser, smoke_run: Path
):
    open_report(browser, report_html)
    results = browser.execute_script(
        "return Object.entries(results).map(([path, r]) => ({path, name: r.name, mime: r.mime_type,"
        " caption: r.caption}))"
    )
    assert not console_errors(browser), console_errors(browser)
    names = {Path(r["path"]).name for r in results}
    figures = {p.name for p in (smoke_run / "results" / "figures").glob("*.png")}
    assert figures, "the smoke run made no figure"
    assert figures <= names, f"figures missing from the report: {sorted(figures - names)}"
    assert any("mape_table" in name for name in names), f"no MAPE table in the report: {sorted(names)}"
    assert any("vs_published" in name for name in names), f"no comparison with the paper: {sorted(names)}"
    uncaptioned = [r["path"] for r in results if not (r["caption"] or "").strip()]
    assert not uncaptioned, f"results without a caption: {uncaptioned}"


def test_every_figure_renders_when_clicked(report_html: Path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    open_report(browser, report_html)
    categories = browser.execute_script("return categories")
    images = [
        (category, subcategory, path)
        for category, subcategories in categories.items()
        for subcategory, paths in subcategories.items()
        for path in paths
        if browser.execute_script("return results[arguments[0]].mime_type", path).startswith("image/")
    ]
    assert images, "the report holds no image"
    for category, subcategory, path in images:
        open_report(browser, report_html)
        click_text(browser, category)
        if subcategory != "Other":
            click_text(browser, subcategory)
        # The results list shows each result's path (or its name, for results with labels).
        name = browser.execute_script("return results[arguments[0]].name", path)
        # The list renders after the click: wait for the row (a slow machine rendered it late).
        row = WebDriverWait(browser, WAIT_S).until(
            lambda d: d.find_element(
                By.XPATH, f"//td[normalize-space()='{path}' or normalize-space()='{name}']/ancestor::tr[1]"
            ),
            message=f"{path} is not listed under {category} / {subcategory}",
        )
        row.find_element(By.CSS_SELECTOR, "a[iconname='eye']").click()
        size = WebDriverWait(browser, WAIT_S).until(displayed_size(path), message=f"{path} was not displayed")
        assert size[0] > 0 and size[1] > 0, f"{path} does not render: natural size {size}"
    assert not console_errors(browser), console_errors(browser)
