"""labeldist: what a language model believes when it labels text with several labels at once.

The Python API (see :mod:`labeldist.api` and docs/tutorial.md)::

    import labeldist as ld
    data = ld.Dataset.from_pandas(df, labels="labels")      # or ld.load_dataset("goemotions", ...)
    run = ld.run(data, model="smollm2-135m-instruct", out="runs/mine", shots=0)
    ld.evaluate(run, cross_fit=5)
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

from labeldist.errors import ConfigError, DataError, LabeldistError, ModelError, TemplateError

# the API's names are imported when first used (pandas alone takes 0.2 s): `labeldist --help`
# and the backends that import a submodule do not pay for them
_LAZY = {
    **{
        name: "labeldist.api"
        for name in ("DEFAULT_MODEL", "Dataset", "Run", "compare", "evaluate", "load_dataset", "report", "run")
    },
    "Item": "labeldist.data.schema",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labeldist' has no attribute {name!r}")


try:
    __version__ = version("labeldist")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "DEFAULT_MODEL",
    "ConfigError",
    "DataError",
    "Dataset",
    "Item",
    "LabeldistError",
    "ModelError",
    "Run",
    "TemplateError",
    "__version__",
    "compare",
    "evaluate",
    "load_dataset",
    "report",
    "run",
]
