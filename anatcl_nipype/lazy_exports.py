"""Sub-packages that export names imported only on first use (PEP 562 ``__getattr__``).

So that ``from anatcl_nipype.interfaces import AnatCLEncode`` does not import the
dependencies of every other interface (torch, scikit-learn, niworkflows).

>>> getattr_, names = lazy_exports("anatcl_nipype", {"errors": ("AnatCLError",)})
>>> names, getattr_("AnatCLError").__name__
(['AnatCLError'], 'AnatCLError')
"""

import importlib


def lazy_exports(package, exports):
    """Return ``(__getattr__, __all__)`` for ``package`` exporting ``{module: names}``."""
    module_of = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name):
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)

    return __getattr__, sorted(module_of)
