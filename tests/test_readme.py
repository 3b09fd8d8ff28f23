"""The python snippets of the README and of the pages in docs/: each runs as written in the
demo's folder, or says in its first line what it needs (and, for CAT12Segment, stops at once
without it instead of hanging)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The pages a user reads: the README first, then docs/ in name order.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: How a snippet that cannot run on the demo begins.
NEEDS = "# Needs "


def python_snippets(page):
    """Every ```python block of one page, in order."""
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


def snippet_name(page, snippet):
    r"""The page's path and the snippet's first line that is code, for the test id.

    >>> snippet_name(ROOT / "docs" / "x.md", "# a comment\nimport os\n")
    'docs/x.md: import os'
    """
    code = next(line for line in snippet.splitlines() if line.strip() and not line.startswith("#"))
    return f"{page.relative_to(ROOT).as_posix()}: {code[:60]}"


#: (page, snippet) for every python snippet of every page.
FOUND = [(page, snippet) for page in PAGES for snippet in python_snippets(page)]
SNIPPETS = [snippet for _, snippet in FOUND]
RUNNABLE = [pytest.param(snippet, id=snippet_name(page, snippet))
            for page, snippet in FOUND if not snippet.startswith(NEEDS)]


def run_python(code, cwd, timeout):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def demo_folder(demo_run):
    """The folder of the session's ``anatcl-nipype demo`` run (conftest.py, shared with
    test_demo): the snippets run in it as a user runs them after the demo."""
    folder, _ = demo_run
    return folder


def test_the_snippets_are_found_and_compile():
    readme = [s for page, s in FOUND if page.name == "README.md" and not s.startswith(NEEDS)]
    assert len(readme) >= 1 and len(SNIPPETS) >= 5 and len(RUNNABLE) >= 3
    assert {page.name for page, _ in FOUND} >= {"README.md", "python-api.md", "nipype.md"}
    for page, snippet in FOUND:
        compile(snippet, snippet_name(page, snippet), "exec")


@pytest.mark.slow
@pytest.mark.parametrize("snippet", RUNNABLE)
def test_snippet_runs_as_written_in_the_demo_folder(snippet, demo_folder):
    done = run_python(snippet, demo_folder, timeout=900)
    assert done.returncode == 0, f"{snippet}\n{done.stdout}\n{done.stderr}"


def test_snippets_that_cannot_run_on_the_demo_say_what_they_need():
    needing = [s for s in SNIPPETS if s.startswith(NEEDS)]
    uses = {"CAT12Segment(": "MATLAB", "SLURM": "Slurm"}
    for snippet in SNIPPETS:
        for call, need in uses.items():
            if call in snippet:
                assert snippet in needing and need in snippet.splitlines()[0], snippet


def test_the_cat12segment_snippet_stops_at_once_without_cat12(tmp_path):
    snippet, = [s for s in SNIPPETS if "CAT12Segment(" in s]
    done = run_python(snippet, tmp_path, timeout=120)  # it used to loop in MultiProc forever
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "CAT12Segment needs MATLAB with SPM12 and CAT12, or the CAT12 standalone: point Nipype "
        "at it with SPMCommand.set_mlab_paths (see below)")
    assert not (tmp_path / "work").exists()  # nothing ran
