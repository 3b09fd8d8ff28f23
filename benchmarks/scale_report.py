"""Benchmark: does the report of a large cohort open, scroll and sort in Chromium?

Opens ``<output_dir>/anatcl/report.html`` (and its first participants page) in headless
Debian Chromium, as ``tests/test_report.py`` does, and prints the seconds to load it, the
seconds a click on the QC table's "outlier z" header takes to sort it, the rows, the page's
size, and whether scrolling to the last row works; saves a screenshot of the index.

``--fake N`` first writes an output folder of N participants with an embedding and sidecar
each but no readable map (no figures: the index holds none anyway; the participants pages
then show the missing map), and times ``build_report`` on it.

    .venv/bin/python benchmarks/scale_report.py --fake 10000 --folder /tmp/anatcl-report10k
    .venv/bin/python benchmarks/scale_report.py --output-dir <out of scale_cohort.py>
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

SORT = """
const th = Array.from(document.querySelectorAll('table.sortable th'))
  .find(h => h.textContent === 'outlier z');
const start = performance.now();
th.click(); const sorted = performance.now() - start;
const rows = document.querySelectorAll('table.sortable tr');
rows[rows.length - 1].scrollIntoView();
return [[sorted, performance.now() - start], rows.length - 1, window.scrollY > 0];
"""


def fake_outputs(out, n, seed=0):
    """``n`` participants' embedding + sidecar (maps absent), as the participant level
    writes them."""
    rng = np.random.default_rng(seed)
    for index in range(n):
        label = f"sub-{index + 1:05d}"
        anat = out / label / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        stem = anat / f"{label}_desc-anatclCustom_embedding"
        np.save(stem.with_suffix(".npy"), rng.normal(size=512).astype(np.float32))
        stem.with_suffix(".json").write_text(json.dumps({
            "input": {"path": str(out.parent / "absent" / f"mwp1{label}_T1w.nii"),
                      "sha256": "ab" * 32}, "precision": "fp32", "shape": [512],
            "weights": {"path": "/w/weights.pth", "random": True, "sha256": "49" * 32}}))


def chromium(width=1280):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def open_report(page, screenshot):
    driver = chromium()
    driver.set_page_load_timeout(300)
    try:
        start = time.perf_counter()
        driver.get(page.as_uri())
        loaded = time.perf_counter() - start
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        driver.execute_script("document.getElementById('Quality-control').scrollIntoView()")
        driver.save_screenshot(str(screenshot))
        sort_ms, rows, scrolled = driver.execute_script(SORT)
        pages = sorted(page.parent.glob("participants-*.html"),
                       key=lambda p: int(p.stem.split("-")[1]))
        page_loaded = None
        if pages:
            start = time.perf_counter()
            driver.get(pages[0].as_uri())
            page_loaded = time.perf_counter() - start
    finally:
        driver.quit()
    return {"load_s": loaded, "sort_ms": sort_ms, "rows": rows, "scrolled": scrolled,
            "errors": errors, "index_mib": page.stat().st_size / 2 ** 20,
            "pages": len(pages), "first_page_load_s": page_loaded}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path)
    parser.add_argument("--fake", type=int)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/anatcl-report-scale"))
    args = parser.parse_args()
    out = args.output_dir
    if args.fake:
        from anatcl_nipype.reports.assemble import build_report

        out = args.folder / "out"
        shutil.rmtree(out, ignore_errors=True)
        fake_outputs(out, args.fake)
        start = time.perf_counter()
        build_report(out)
        print(f"build_report: {time.perf_counter() - start:.1f} s for {args.fake} participants")
    page = out / "anatcl" / "report.html"
    result = open_report(page, page.parent / "index_screenshot.png")
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
