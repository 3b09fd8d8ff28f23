"""The layers: imports only go downward, and building workflows stays torch-free."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "anatcl_nipype"
EXAMPLES = PACKAGE.parent / "examples"


def imported_modules(path):
    """Every ``anatcl_nipype...`` module a file imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("anatcl_nipype.")}


def modules_under(folder):
    return sorted(path for path in (PACKAGE / folder).rglob("*.py"))


def test_no_import_cycle_among_cli_modules():
    cli = {path.stem: path for path in modules_under("cli")}
    edges = {name: {other for other in cli if f"anatcl_nipype.cli.{other}" in
                    imported_modules(path)} - {name}
             for name, path in cli.items()}

    def reaches(start, goal, seen=()):
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, (*seen, nxt)))
                   for nxt in edges[start])

    cycles = sorted(name for name in edges if reaches(name, name))
    assert cycles == []
    assert edges["main"] >= {"parser", "participant", "group", "demo", "weights"}
    assert "main" not in set().union(*(edges[name] for name in edges if name != "main"))


@pytest.mark.parametrize("layer, forbidden", [
    ("encoder", ("regional", "training", "prediction", "interfaces", "workflows", "cli")),
    ("training", ("prediction", "interfaces", "workflows", "cli")),
    ("regional", ("training", "prediction", "interfaces", "workflows", "cli")),
    ("prediction", ("encoder", "training", "interfaces", "workflows", "cli")),
    ("interfaces", ("workflows", "cli")),
    ("workflows", ("cli",)),
])
def test_layers_import_only_downward(layer, forbidden):
    offending = sorted(
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules_under(layer) for name in imported_modules(path)
        if name.split(".")[1] in forbidden)
    assert offending == []


def test_ground_floor_imports_no_layer():
    layers = {"encoder", "training", "regional", "prediction", "interfaces", "workflows", "cli"}
    for module in ("options", "inputs", "bids", "files", "errors", "lazy_exports", "threads",
                   "outputs"):
        imported = {name.split(".")[1] for name in imported_modules(PACKAGE / f"{module}.py")
                    if name.count(".")}
        assert imported & layers == set(), module


#: What examples may import from: the exporting sub-packages (names in ``__all__``) and the
#: import-light modules whose public functions users call (inputs, BIDS names, graphs).
PUBLIC_API = ("workflows", "interfaces", "inputs", "bids", "graphs", "errors")


def imported_names(path):
    """``(module, name)`` of every ``from anatcl_nipype... import name`` in a file, and
    ``(module, None)`` for every ``import anatcl_nipype...``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("anatcl_nipype"):
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names
                         if alias.name.startswith("anatcl_nipype"))
    return found


def is_public(module, name):
    """Whether ``from <module> import <name>`` uses only the public API."""
    parts = module.split(".")
    if len(parts) != 2 or parts[1] not in PUBLIC_API or name is None or name.startswith("_"):
        return False
    exported = getattr(importlib.import_module(module), "__all__", None)
    return exported is None or name in exported


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_examples_use_only_the_public_api(example):
    imports = imported_names(EXAMPLES / example)
    private = [f"from {module} import {name}" for module, name in imports
               if not is_public(module, name)]
    assert private == []


def test_a_submodule_or_unexported_import_is_not_public_api():
    assert is_public("anatcl_nipype.workflows", "init_anatcl_encoding_wf")
    assert not is_public("anatcl_nipype.workflows.encoding", "init_anatcl_encoding_wf")
    assert not is_public("anatcl_nipype.workflows", "encoding_description")
    assert not is_public("anatcl_nipype.cli.main", "main")
    assert not is_public("anatcl_nipype.inputs", "_walk_files")


def test_command_line_checks_before_heavy_imports(tmp_path):
    """Parsing, dispatching and the input checks of both levels import nothing heavy."""
    code = (
        "import sys\n"
        "from anatcl_nipype.cli.main import main\n"
        f"code = main([{str(tmp_path / 'nothing')!r}, {str(tmp_path / 'out')!r}, 'participant'])\n"
        f"code2 = main([{str(tmp_path / 'cat12')!r}, {str(tmp_path / 'out')!r}, 'group'])\n"
        "print(code, code2, sorted(m for m in ('torch', 'sklearn', 'niworkflows', 'nipype')"
        " if m in sys.modules))\n")
    (tmp_path / "cat12").mkdir()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "1 1 []"
    assert "no such folder; pass the folder CAT12 wrote into" in done.stderr
    assert "the group level needs --target" in done.stderr


def test_building_every_workflow_imports_no_torch(tmp_path):
    probe = tmp_path / "probe.skops"
    probe.touch()
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "import anatcl_nipype.workflows as w\n"
        "subject = {'participant_id': 'sub-01', 'gm_modulated': '/d/mwp1sub-01_T1w.nii',"
        " 'label_roi': '/d/catROI_sub-01_T1w.xml'}\n"
        f"built = [w.init_anatcl_group_wf(target='age', output_dir={str(tmp_path)!r}),\n"
        f"         w.init_anatcl_group_wf(target='dx', model={str(probe)!r}, features='both'),\n"
        "         w.init_anatcl_prediction_wf(task='brain_age', target='age'),\n"
        "         w.init_anatcl_participant_wf(subjects=[subject], "
        f"output_dir={str(tmp_path)!r}),\n"
        "         w.init_anatcl_group_encoding_wf(), w.init_cat12_anatcl_wf(),\n"
        "         w.init_spm_anatcl_wf(), w.init_anatcl_regional_wf()]\n"
        "[wf.visit_desc() for wf in built]\n"
        "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
