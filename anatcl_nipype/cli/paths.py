"""Check the folders and files a command line names, before anything is written.

Each problem is one :class:`~anatcl_nipype.errors.AnatCLError` line naming the path (shown
with ``repr`` escapes where it holds control characters) and what to do: a missing CAT12
folder or a file in its place, an output or work folder that is a file, an output folder
inside the CAT12 folder (outside its ``derivatives/``) or equal to it, and
names with line breaks or other control characters, which the TSV tables, sidecars and
Nipype's own text files cannot hold. Unicode names are fine.

>>> check_path_text(Path("caf\u00e9"), "output folder")
>>> check_path_text(Path("a\\nb"), "output folder")  # doctest: +NORMALIZE_WHITESPACE
Traceback (most recent call last):
...
anatcl_nipype.errors.AnatCLError: 'a\\nb': the output folder's name holds a control character
(line break, tab, ...); rename it or choose another
"""

import os
import unicodedata
from pathlib import Path

from anatcl_nipype.errors import AnatCLError


def check_paths(options):
    """Refuse hostile or contradictory paths in ``options`` (see the module's notes)."""
    named = {"CAT12 folder": options.cat12_dir, "output folder": options.output_dir,
             "work folder": options.work_dir, "weights file": options.weights,
             "probe file": options.model, "participants table": options.participants}
    for role, path in named.items():
        if path is not None:
            check_path_text(Path(path), role)
    cat12_dir = Path(options.cat12_dir).absolute()
    if not cat12_dir.exists():
        raise AnatCLError(f"{cat12_dir}: no such folder; pass the folder CAT12 wrote into")
    if not cat12_dir.is_dir():
        raise AnatCLError(f"{cat12_dir}: a file, not a folder; pass the folder CAT12 wrote into")
    for role, path in (("output folder", options.output_dir), ("work folder", options.work_dir)):
        check_creatable(Path(path).absolute(), role)
    check_output_outside_input(Path(options.output_dir), cat12_dir)


def check_creatable(folder, role):
    """``folder`` is a folder, or can be made: its nearest existing ancestor is a writable
    folder (checked without creating anything)."""
    if folder.exists():
        if not folder.is_dir():
            raise AnatCLError(f"{folder}: the {role} is a file; choose a folder")
        return
    ancestor = next(parent for parent in folder.parents if parent.exists())
    if not ancestor.is_dir():
        raise AnatCLError(f"{folder}: cannot create the {role} ({ancestor} is a file); "
                          "choose another")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise AnatCLError(f"{folder}: cannot create the {role} ({ancestor} is not writable); "
                          "choose another")


def check_output_outside_input(output_dir, cat12_dir):
    """The output folder must not be the CAT12 folder or inside it, except under its
    ``derivatives/`` (the BIDS-App convention ``<bids_dir> <bids_dir>/derivatives/x``)."""
    output_dir, cat12_dir = output_dir.absolute().resolve(), cat12_dir.absolute().resolve()
    if output_dir == cat12_dir:
        raise AnatCLError(f"{output_dir}: the output folder is the CAT12 folder itself; "
                          "choose another (e.g. a sibling derivatives folder)")
    if cat12_dir in output_dir.parents and \
            output_dir.relative_to(cat12_dir).parts[0] != "derivatives":
        raise AnatCLError(f"{output_dir}: the output folder is inside the CAT12 folder "
                          f"{cat12_dir}, where the next run would look for inputs; choose a "
                          "folder outside it, or under its derivatives/")


def check_path_text(path, role):
    """Refuse a path whose name holds a control character (line break, tab, ...)."""
    if any(unicodedata.category(char) == "Cc" for char in str(path)):
        raise AnatCLError(f"{str(path)!r}: the {role}'s name holds a control character "
                          "(line break, tab, ...); rename it or choose another")
