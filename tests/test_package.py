"""Package-level promises: cheap imports, every advertised name exists."""

import subprocess
import sys

import pytest

import anatcl_nipype.encoder
import anatcl_nipype.interfaces
import anatcl_nipype.workflows


@pytest.mark.parametrize("package", [anatcl_nipype.encoder, anatcl_nipype.interfaces,
                                     anatcl_nipype.workflows])
def test_every_exported_name_resolves(package):
    for name in package.__all__:
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        package.nope  # noqa: B018


def test_building_and_drawing_workflows_imports_no_torch_or_sklearn():
    code = ("import sys\n"
            "from anatcl_nipype.workflows import init_anatcl_encoding_wf, init_cat12_anatcl_wf\n"
            "init_anatcl_encoding_wf(); init_cat12_anatcl_wf()\n"
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_importing_the_package_is_cheap():
    code = ("import sys, anatcl_nipype; print(sorted(m for m in "
            "('torch', 'sklearn', 'nipype', 'niworkflows') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_security_contact_is_in_the_metadata_and_named_by_security_md():
    """SECURITY.md sends reports to the tracker the package metadata names."""
    import configparser
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    config = configparser.ConfigParser()
    config.read(root / "setup.cfg")
    urls = dict(line.split(" = ", 1) for line in
                config["metadata"]["project_urls"].strip().splitlines())
    assert urls["Bug Tracker"] == "https://github.com/anatcl-nipype/anatcl-nipype/issues"
    assert urls["Bug Tracker"].startswith(urls["Source"])
    policy = (root / "SECURITY.md").read_text().split("## Reporting a problem", 1)[1]
    assert urls["Source"] in policy
    assert '"Security" tab' in policy and '"Report a vulnerability"' in policy
    assert "Bug Tracker" in policy
