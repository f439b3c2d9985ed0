"""labeldist: what a language model believes when it labels text with several labels at once.

The Python API (see :mod:`labeldist.api` and docs/tutorial.md)::

    import labeldist as ld
    data = ld.Dataset.from_pandas(df, labels="labels")      # or ld.load_dataset("goemotions", ...)
    run = ld.run(data, model="smollm2-135m-instruct", out="runs/mine", shots=0)
    ld.evaluate(run, cross_fit=5)
"""

from importlib.metadata import PackageNotFoundError, version

from labeldist.api import DEFAULT_MODEL, Dataset, Run, compare, evaluate, load_dataset, report, run
from labeldist.data.schema import Item
from labeldist.errors import ConfigError, DataError, LabeldistError, ModelError, TemplateError

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
