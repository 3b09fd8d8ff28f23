"""Draw a Nipype workflow's graph without a shell.

Nipype's ``Workflow.write_graph`` renders the ``.dot`` file with ``dot`` through a shell
command string built from the file's path, so a work or output folder named
``x$(touch PWNED)`` runs that command. Here Nipype only writes the ``.dot`` text
(``write_hierarchical_dotfile``, no rendering) into a private temporary folder, and graphviz's
``dot`` is called with an argument list (no shell); the picture is then moved into place
atomically. Every graph the package draws goes through :func:`draw_workflow_graph`.

>>> from nipype.pipeline import engine as pe
>>> from nipype.interfaces.utility import IdentityInterface
>>> import tempfile, pathlib
>>> wf = pe.Workflow(name="demo_wf")
>>> wf.add_nodes([pe.Node(IdentityInterface(fields=["x"]), name="inputnode")])
>>> out = pathlib.Path(tempfile.mkdtemp()) / "x$(echo hi)" / "graph.svg"
>>> draw_workflow_graph(wf, out).read_text().lstrip().startswith("<?xml")
True
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import atomic_write

#: The graph kinds drawn from Nipype's hierarchical ``.dot`` export.
GRAPH_KINDS = ("hierarchical", "colored")
#: Output formats asked of graphviz (``dot -T<format>``).
GRAPH_FORMATS = ("svg", "png", "pdf", "dot")
DOT_TIMEOUT_SECONDS = 120


def draw_workflow_graph(workflow, destination, graph2use="colored", simple_form=True):
    """Draw ``workflow`` into ``destination`` (format from its suffix); return the path.

    ``graph2use`` is ``colored`` (default) or ``hierarchical``, as in Nipype. Raises
    :class:`AnatCLError` when graphviz is missing or fails; nothing is passed to a shell.
    """
    destination = Path(destination).absolute()
    image_format = destination.suffix.lstrip(".").lower()
    if graph2use not in GRAPH_KINDS:
        raise AnatCLError(f"graph2use must be one of {GRAPH_KINDS}, not {graph2use!r}")
    if image_format not in GRAPH_FORMATS:
        raise AnatCLError(f"{destination}: cannot draw a graph as {image_format!r}; "
                          f"use one of {', '.join(GRAPH_FORMATS)}")
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="anatcl-graph-") as scratch:
        dotfile = Path(scratch) / "graph.dot"
        workflow.write_hierarchical_dotfile(dotfilename=str(dotfile),
                                            colored=graph2use == "colored",
                                            simple_form=simple_form)
        with atomic_write(destination) as tmp:
            if image_format == "dot":
                shutil.copyfile(dotfile, tmp)
            else:
                render_dot(dotfile, tmp, image_format)
    return destination


def render_dot(dotfile, picture, image_format="svg"):
    """Render ``dotfile`` into ``picture`` with graphviz's ``dot`` (argument list, no shell)."""
    dot = shutil.which("dot")
    if dot is None:
        raise AnatCLError("cannot draw the workflow graph: graphviz's 'dot' is not installed "
                          "(install graphviz, or leave out --write-graph)")
    done = subprocess.run([dot, f"-T{image_format}", f"-o{Path(picture).absolute()}",
                           str(Path(dotfile).absolute())],
                          capture_output=True, text=True, timeout=DOT_TIMEOUT_SECONDS)
    if done.returncode:
        raise AnatCLError(f"{dotfile}: graphviz's dot failed ({done.stderr.strip()[-300:]})")
