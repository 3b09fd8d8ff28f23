"""Write nested Python values as XML the way CAT12 writes its MATLAB structs.

Used by the SYNTHETIC cohort generator, so that its ``catROI_*.xml``,
``catROIs_*.xml`` and ``cat_*.xml`` files look like CAT12's own. CAT12's
``cat_io_xml`` sorts the struct's top-level fields (``orderfields``, which does
not recurse) and hands it to Jarek Tuszynski's ``xml_write``:

- root element ``<S>``, one child element per field, 3-space indentation;
- numbers as MATLAB's ``mat2str`` prints them: a scalar bare (``1523.4``), a
  column vector ``[4;11;23]``, a row vector ``[4 11 23]``, a matrix
  ``[1 2;3 4]``, 15 significant digits, ``NaN``/``Inf``/``-Inf`` as words,
  logical scalars as ``[true]``;
- a cell array (a Python list) as repeated ``<item>`` elements;
- empty fields are left out; non-printable characters in text become spaces
  and runs of spaces collapse to one.

How Python values map onto MATLAB ones:

=====================  ======================================================
``dict``               struct (top level sorted, nested levels in dict order)
``str``                char array
``int``, ``float``     double scalar
``bool``               logical scalar
1-D ``ndarray``        column vector (``x(:)`` in MATLAB)
2-D ``ndarray``        matrix; shape ``(1, n)`` is a row vector
``list``, ``tuple``    cell array, one ``<item>`` per element
=====================  ======================================================

>>> print(struct_to_xml({"b": np.array([1.0, 2.5]), "a": {"name": "lAmy"}}), end="")
<?xml version="1.0" encoding="utf-8"?>
<S>
   <a>
      <name>lAmy</name>
   </a>
   <b>[1;2.5]</b>
</S>
"""

import math
import re
import xml.etree.ElementTree as ET

import numpy as np

from anatcl_nipype.errors import AnatCLError
from anatcl_nipype.files import atomic_write

#: The XML declaration Java's serializer puts first in CAT12's files.
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'


def mat2str(value):
    """Format a number, boolean or numeric array as MATLAB's ``mat2str`` does.

    >>> mat2str(3.0), mat2str(1 / 3), mat2str(float("nan")), mat2str(-float("inf"))
    ('3', '0.333333333333333', 'NaN', '-Inf')
    >>> mat2str(np.array([4, 11, 23])), mat2str(np.array([[1.5, 2.0]])), mat2str(True)
    ('[4;11;23]', '[1.5 2]', '[true]')
    """
    if isinstance(value, (bool, np.bool_)):
        return "[true]" if value else "[false]"
    array = np.asarray(value, dtype=np.float64)
    if array.ndim > 2:
        raise AnatCLError(f"cannot write a {array.ndim}-D array as CAT12 XML; "
                          "pass a scalar, a vector or a 2-D matrix")
    if array.size == 1:
        return _format_number(float(array.reshape(-1)[0]))
    rows = array.reshape(-1, 1) if array.ndim == 1 else array
    return "[" + ";".join(" ".join(_format_number(x) for x in row) for row in rows) + "]"


def struct_to_xml(struct, root="S"):
    """Return the XML text CAT12 would write for the struct ``struct``.

    >>> print(struct_to_xml({"names": ["lHip", "rHip"], "empty": []}), end="")
    <?xml version="1.0" encoding="utf-8"?>
    <S>
       <names>
          <item>lHip</item>
          <item>rHip</item>
       </names>
    </S>
    """
    if not isinstance(struct, dict):
        raise AnatCLError(f"a CAT12 XML file holds a struct (dict), not {type(struct).__name__}")
    element = ET.Element(root)
    for name in sorted(struct):
        _append(element, name, struct[name])
    ET.indent(element, space="   ")
    return XML_DECLARATION + "\n" + ET.tostring(element, encoding="unicode") + "\n"


def write_cat12_xml(path, struct):
    """Write ``struct`` to ``path`` as CAT12 XML, atomically; return the path.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cat_sub-01_T1w.xml"
    >>> _ = write_cat12_xml(path, {"subjectmeasures": {"vol_TIV": 1523.4}})
    >>> "<vol_TIV>1523.4</vol_TIV>" in path.read_text()
    True
    """
    with atomic_write(path) as tmp:
        tmp.write_text(struct_to_xml(struct), encoding="utf-8")
    return path


def _append(parent, name, value):
    """Add ``value`` under ``parent`` as element ``name``; skip empty values."""
    if _is_empty(value):
        return
    element = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for field, field_value in value.items():
            _append(element, field, field_value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _append_item(element, item)
    else:
        element.text = _leaf_text(value)


def _append_item(parent, value):
    """Add one cell-array element; an empty one stays as an empty ``<item/>``."""
    if _is_empty(value):
        ET.SubElement(parent, "item")
    else:
        _append(parent, "item", value)


def _leaf_text(value):
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, (bool, int, float, np.generic, np.ndarray)):
        return mat2str(value)
    raise AnatCLError(f"cannot write a value of type {type(value).__name__} as CAT12 XML; "
                      "use dict, list, str, a number or a numpy array")


def _clean_text(text):
    printable = "".join(" " if ord(char) < 32 or ord(char) == 127 else char for char in text)
    return re.sub(r"\s+", " ", printable.strip())


def _format_number(x):
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    if x == 0:
        return "0"
    return format(x, ".15g")


def _is_empty(value):
    if value is None:
        return True
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) == 0
    return isinstance(value, np.ndarray) and value.size == 0
