"""The HTML report renders in a real headless browser with every figure and no console error."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anatcl_nipype.cli.report import qc_flags, write_report
from anatcl_nipype.data import make_cat12_cohort

pytestmark = pytest.mark.slow
SCREENSHOTS = Path(__file__).parent / "_screenshots"


def open_in_chromium(page, screenshot):
    """Load ``page`` in headless Debian Chromium; return (console errors, figure counts)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(Path(page).as_uri())
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
        svgs = driver.execute_script("return document.querySelectorAll('svg').length")
        sections = driver.execute_script(
            "return Array.from(document.querySelectorAll('section h2')).map(h => h.textContent)")
        driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    return errors, images, svgs, sections


@pytest.fixture(scope="module")
def participant_outputs(tmp_path_factory, random_weights):
    root = tmp_path_factory.mktemp("report")
    cohort = make_cat12_cohort(root / "cat12", n_subjects=4, seed=2)
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", cohort.root, root / "out",
                           "participant", "--weights", random_weights, "--write-graph",
                           "-w", root / "work"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return cohort, root / "out"


def test_report_renders_with_every_figure(participant_outputs):
    cohort, out = participant_outputs
    page = write_report(out, cohort.participants_tsv)
    SCREENSHOTS.mkdir(exist_ok=True)
    errors, images, svgs, sections = open_in_chromium(page, SCREENSHOTS / "report.png")
    assert errors == []
    assert sections == ["Summary", "Input QC", "Embeddings", "Prediction", "Methods",
                        "Workflow graph", "Provenance"]
    assert len(images) == 5  # 4 QC panels + the PCA
    assert all(loaded for _, loaded in images), images
    assert svgs >= 1  # the workflow graph
    html = page.read_text()
    assert "RANDOM WEIGHTS" in html  # said loudly
    assert (SCREENSHOTS / "report.png").stat().st_size > 10_000


def test_qc_flags_odd_maps():
    import numpy as np

    normal = np.full((10, 10, 10), 0.3, np.float32)
    assert qc_flags(normal) == []
    assert "maximum 3.00 > 1.5" in qc_flags(normal * 10)[1]
    assert "mean GM density 0.01" in qc_flags(normal / 30)[0]
