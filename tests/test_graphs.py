"""Workflow graphs are drawn without a shell: folder names with $(...), backticks and
semicolons are drawn into, never executed."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.graphs import draw_workflow_graph
from anatcl_nipype.workflows.encoding import init_anatcl_encoding_wf

HOSTILE_NAMES = ["x$(touch PWNED)", "y`touch PWNED`", "z;touch PWNED;", 'q"; touch PWNED; "',
                 "caf\u00e9 $(touch PWNED) \u00fcml"]
PACKAGE = Path(__file__).resolve().parents[1] / "anatcl_nipype"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def planted(root):
    return sorted(str(path) for path in Path(root).rglob("PWNED*"))


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_folder_name_is_drawn_into_and_never_executed(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)  # where a shell would have run `touch PWNED`
    workflow = init_anatcl_encoding_wf()
    destination = tmp_path / name / "graph.svg"
    assert draw_workflow_graph(workflow, destination) == destination
    svg = ET.parse(destination).getroot()
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    titles = {node.text for node in svg.iter("{http://www.w3.org/2000/svg}title")}
    assert {"anatcl_encoding_wf_inputnode", "anatcl_encoding_wf_anatcl_encode"} <= titles
    assert planted(tmp_path) == []
    assert sorted(path.name for path in destination.parent.iterdir()) == ["graph.svg"]


def test_nipype_own_rendering_would_run_the_command(tmp_path, monkeypatch):
    """The control: the names above are hostile (Nipype's write_graph runs them)."""
    monkeypatch.chdir(tmp_path)
    workflow = init_anatcl_encoding_wf()
    workflow.base_dir = str(tmp_path / HOSTILE_NAMES[0])
    workflow.write_graph(graph2use="colored", format="svg")
    assert planted(tmp_path) == [str(tmp_path / "PWNED")]


def test_dot_and_hierarchical_formats(tmp_path):
    workflow = init_anatcl_encoding_wf()
    dot = draw_workflow_graph(workflow, tmp_path / "g.dot", graph2use="hierarchical").read_text()
    assert dot.splitlines()[:4] == [
        "digraph anatcl_encoding_wf{", '  label="anatcl_encoding_wf";',
        '  anatcl_encoding_wf_inputnode[label="inputnode (utility)"];',
        '  anatcl_encoding_wf_anatcl_encode[label="anatcl_encode (encoder)"];']
    with pytest.raises(AnatCLError, match=r"g\.gif: cannot draw a graph as 'gif'; use one of"):
        draw_workflow_graph(workflow, tmp_path / "g.gif")
    with pytest.raises(AnatCLError, match="graph2use must be one of"):
        draw_workflow_graph(workflow, tmp_path / "g.svg", graph2use="exec")


SHELL_USE = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|\.write_graph\(|"
                       r"format_dot\(|CommandLine\(")


def test_no_shell_anywhere_in_the_package_or_examples():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}"
                 for folder in (PACKAGE, EXAMPLES) for path in sorted(folder.rglob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if SHELL_USE.search(line) and not line.lstrip().startswith(("#", ">>>"))]
    assert offenders == []
