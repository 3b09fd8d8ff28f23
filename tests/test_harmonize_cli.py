"""ComBat site harmonisation through the command line, on a synthetic multi-site cohort.

The participant level's outputs are written here directly (embeddings with a planted
site offset, named and sidecar'd as the participant level names them), so the group
level runs as a user runs it without encoding full-size maps.
"""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow

N_PER_SITE = 20
SITES = ("siteA", "siteB", "siteC")


def anatcl_nipype(*args):
    done = subprocess.run([sys.executable, "-m", "anatcl_nipype", *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Embeddings carrying only a strong site offset; ``sitelabel`` is the site's label."""
    root = tmp_path_factory.mktemp("harmonize")
    cat12, out = root / "cat12", root / "out"
    cat12.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for number in range(N_PER_SITE * len(SITES)):
        site = SITES[number % len(SITES)]
        participant = f"sub-{number + 1:02d}"
        age = float(np.round(rng.uniform(20, 80), 1))
        offset = 2.0 * (SITES.index(site) - 1)
        vector = (rng.normal(size=16) + offset).astype(np.float32)
        anat = out / participant / "anat"
        anat.mkdir(parents=True)
        stem = anat / f"{participant}_desc-anatclGlobalFold0_embedding"
        np.save(f"{stem}.npy", vector)
        stem.with_suffix(".json").write_text(json.dumps({
            "weights": {"descriptor": "global", "fold": 0, "sha256": "0" * 64},
            "precision": "fp32", "output": "backbone representation (512-d)",
            "input": {"path": str(cat12 / participant / "mri" / f"mwp1{participant}_T1w.nii")}}))
        rows.append({"participant_id": participant, "age": age, "site": site,
                     "sitelabel": "high" if site == "siteC" else "low"})
    with open(cat12 / "participants.tsv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return cat12, out


def _balanced_accuracy(target_dir):
    with open(target_dir / "metrics.tsv", newline="") as stream:
        rows = {row["fold"]: row for row in csv.DictReader(stream, delimiter="\t")}
    return float(rows["mean"]["balanced_accuracy"])


def test_a_pure_site_label_is_at_chance_after_combat(study, tmp_path):
    cat12, out = study
    code, stdout, stderr = anatcl_nipype(cat12, out, "group", "--target", "sitelabel",
                                         "--cv", "3", "-w", tmp_path / "raw")
    assert code == 0, stderr
    raw = _balanced_accuracy(out / "group" / "target-sitelabel")
    assert raw > 0.9  # the site offset makes the label easy
    code, stdout, stderr = anatcl_nipype(cat12, out, "group", "--target", "sitelabel",
                                         "--cv", "3", "--harmonize", "combat",
                                         "--covariates", "age", "-w", tmp_path / "combat")
    assert code == 0, stderr
    target = out / "group" / "target-sitelabel"
    assert _balanced_accuracy(target) < 0.7  # chance is 0.5
    card = json.loads((target / "probe.json").read_text())
    harmonization = card["harmonization"]
    assert harmonization["method"] == "combat" and harmonization["covariates"] == ["age"]
    assert harmonization["sites"] == list(SITES)
    separability = harmonization["site_separability"]
    assert separability["before"] > 0.9 and separability["after"] < 0.6
    assert separability["chance"] == pytest.approx(1 / 3)
    report = (out / "anatcl" / "report.html").read_text()
    assert "sitelabel: site harmonisation" in report
    assert "site separability before" in report and "siteA, siteB, siteC" in report


def test_applying_a_harmonised_probe_refuses_an_unseen_site(study, tmp_path):
    cat12, out = study
    code, _, stderr = anatcl_nipype(cat12, out, "group", "--target", "age", "--cv", "3",
                                    "--harmonize", "combat", "-w", tmp_path / "fit")
    assert code == 0, stderr
    probe = out / "group" / "target-age" / "probe.skops"
    code, stdout, stderr = anatcl_nipype(cat12, out, "group", "--model", probe,
                                         "-w", tmp_path / "apply")
    assert code == 0, stderr
    assert (out / "group" / "target-age" / "desc-applied_predictions.tsv").is_file()
    moved = tmp_path / "participants.tsv"
    moved.write_text((cat12 / "participants.tsv").read_text().replace("siteC", "siteZ"))
    code, stdout, stderr = anatcl_nipype(cat12, out, "group", "--model", probe,
                                         "--participants", moved, "-w", tmp_path / "unseen")
    assert code == 1
    assert "site 'siteZ' was not among the sites" in stderr + stdout
    assert "unseen_sites='estimate'" in stderr + stdout


def test_harmonising_needs_the_site_column(study, tmp_path):
    cat12, out = study
    code, stdout, stderr = anatcl_nipype(cat12, out, "group", "--target", "age", "--cv", "3",
                                         "--harmonize", "combat", "--site-column", "scanner",
                                         "-w", tmp_path / "work")
    assert code == 1
    assert "no column 'scanner'" in stderr + stdout
