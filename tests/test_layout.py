"""The house's one-way flow, checked on the source: no package imports from a floor above its
own (function-level imports included), and no import circle between modules except the data
loader registry's (the registry names every loader; each loader registers itself)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import labeldist

ROOT = Path(labeldist.__file__).parent
# bottom to top: a package may import from its own floor and the floors below it
FLOORS = (
    ("errors", "atomic"),
    ("metrics",),  # pure functions on arrays: import nothing of labeldist
    ("data",),
    ("prompts",),
    ("slots",),
    ("models",),
    ("runs",),
    ("estimators",),
    ("training",),
    ("evaluation",),
    ("workflows",),
    ("report",),
    ("api",),  # the Python API: what the package root exports and the CLI calls
    ("cli", "__main__"),
)
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}
ALLOWED_CIRCLES = [{"labeldist.data", "labeldist.data.registry"}]  # every circle must contain these


def _modules(root: Path = ROOT) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> labeldist modules it imports anywhere in its body (resolved to known modules)."""

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                # the package root is the API's facade (it imports labeldist.api); `from labeldist
                # import atomic` names a submodule, not the facade
                names = ([target] if target != "labeldist" else []) + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("labeldist") and (found := known(name)) and found != module:
                    edges[module].add(found)
    return edges


def _floor(module: str) -> int | None:
    parts = module.split(".")
    return FLOOR.get(parts[1]) if len(parts) > 1 else None


def test_every_package_has_a_floor():
    packages = {m.split(".")[1] for m in _modules() if "." in m}
    assert packages <= set(FLOOR), f"packages without a floor in FLOORS: {sorted(packages - set(FLOOR))}"


def _upward(modules: dict[str, Path]) -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module, targets in _imports(modules).items()
        for target in targets
        if _floor(module) is not None and _floor(target) is not None and _floor(target) > _floor(module)
    )


def test_no_import_from_a_higher_floor():
    upward = _upward(_modules())
    assert not upward, "imports from a higher floor:\n" + "\n".join(upward)


def test_no_import_circles_but_the_loader_registry():
    edges = _imports(_modules())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(component)

    for module in _modules():
        if module not in index:
            visit(module)
    unexpected = [sorted(c) for c in circles if not any(allowed <= c for allowed in ALLOWED_CIRCLES)]
    assert not unexpected, f"import circles: {unexpected}"
    # the registry's circle stays inside data/
    assert all(m.startswith("labeldist.data") for c in circles for m in c)


def test_the_checker_sees_violations(tmp_path):
    """The check can fail: in a package laid out like ours, a function-level import from a higher
    floor (absolute or relative) is found, and an import from below is not."""
    root = tmp_path / "labeldist"
    for folder in ("data", "report", "metrics"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "report" / "analyses.py").write_text("from labeldist.metrics import summary\n")
    (root / "metrics" / "summary.py").write_text("")
    (root / "data" / "loader.py").write_text("def f():\n    from labeldist.report.analyses import analyze_runs\n")
    (root / "data" / "other.py").write_text("def g():\n    from ..report import analyses\n")
    assert _upward(_modules(root)) == [
        "labeldist.data.loader -> labeldist.report.analyses",
        "labeldist.data.other -> labeldist.report",
        "labeldist.data.other -> labeldist.report.analyses",
    ]


def test_backends_are_the_interface_runs_call():
    """The abstract Backend's methods are what the run loop calls (no hasattr probing): both
    backends implement all of them, a backend missing one cannot be made, and runs/ calls
    nothing on a backend that the interface does not declare."""
    import dataclasses

    import pytest

    from labeldist.models.base import Backend, Capabilities
    from labeldist.models.registry import BACKENDS, backend_class

    interface = {name for name in dir(Backend) if not name.startswith("_")}
    assert {"describe", "render", "generate", "score_answers", "score", "precision_check", "create"} <= interface
    assert {"hf", "openai"} <= set(BACKENDS)
    for name in BACKENDS:  # every registered backend: the whole interface, what it can do, its settings
        cls = backend_class(name)
        assert issubclass(cls, Backend) and not cls.__abstractmethods__, name
        assert isinstance(cls.capabilities, Capabilities) and dataclasses.is_dataclass(cls.settings_class), name
        assert callable(getattr(cls.settings_class, "identity", None)), name

    class Partial(Backend):
        def describe(self):
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Partial()
    called = set()
    for path in (ROOT / "runs").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "backend":
                called.add(node.attr)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "hasattr":
                assert not (node.args and getattr(node.args[0], "id", None) == "backend"), f"hasattr(backend, ...) in {path}"
    assert called and called <= interface, f"runs call {sorted(called - interface)} outside the interface"


def _undocumented(node, where: str, prefix: str = "") -> list[str]:
    """Public functions and classes under ``node`` without a docstring, classes searched inside."""
    out = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and not child.name.startswith("_"):
            if not ast.get_docstring(child):
                out.append(f"{where}:{child.lineno} {prefix}{child.name}")
            if isinstance(child, ast.ClassDef):
                out += _undocumented(child, where, f"{prefix}{child.name}.")
    return out


def test_every_public_function_and_class_has_a_docstring():
    trees = {module: ast.parse(path.read_text(encoding="utf-8")) for module, path in _modules().items()}
    missing = [entry for module, tree in trees.items() for entry in _undocumented(tree, module)]
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)
    assert _undocumented(ast.parse("def f():\n    pass\nclass A:\n    def g(self): ..."), "m") == ["m:1 f", "m:3 A", "m:4 A.g"]


LONG_FILE = 450  # lines; a longer module says why it stays one file


def test_long_files_say_why_they_stay_one_file():
    unexplained = []
    for module, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > LONG_FILE and "Why one file:" not in (ast.get_docstring(ast.parse(text)) or ""):
            unexplained.append(f"{module} ({text.count(chr(10))} lines)")
    assert not unexplained, "long modules without a 'Why one file:' paragraph in their docstring: " + ", ".join(unexplained)


def test_backends_import_only_what_they_use():
    """The registry and the HTTP backend import no model library: naming a backend or running
    against a server never loads torch (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys, labeldist.models.registry, labeldist.models.openai, labeldist.models.hf.settings, labeldist.slots; "
        "from labeldist.models.registry import capabilities, make_settings; "
        "assert not capabilities('openai').exact_slots; make_settings('openai', 'm', {'base_url': 'http://127.0.0.1:1/v1'}); "
        "heavy = [m for m in ('torch', 'transformers', 'vllm') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_help_imports_no_model_library():
    """`labeldist --help` and each command's --help import no torch, transformers, matplotlib,
    Ray, vLLM, scikit-learn, pandas or pyarrow (checked in a fresh interpreter; issue 32: a quick
    command line)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from labeldist.cli import main\n"
        "for argv in (['--help'], ['run', '--help'], ['evaluate', '--help'], ['suite', '--help'], ['report', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('torch', 'transformers', 'matplotlib', 'ray', 'vllm', 'sklearn', 'pandas', 'pyarrow')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _private_imports(root: Path = ROOT) -> list[str]:
    """Every ``from labeldist.X import _name`` (or ``import`` of a private module attribute) where
    X is another module than the importer: a private name is its module's own business."""
    found = []
    for module, path in _modules(root).items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("labeldist") and node.level == 0:
                if node.module == module:
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{module}:{node.lineno} imports {node.module}.{alias.name}")
    return found


def test_no_module_imports_a_private_name_of_another():
    found = _private_imports()
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_the_report_loads_no_model():
    """The report draws what runs recorded and analyses computed: nothing under report/ imports
    models/ (the attention pass, which reloads a run's model, lives in runs/attention.py)."""
    found = [
        f"{module} imports {name}"
        for module, names in _imports(_modules()).items()
        if module.startswith("labeldist.report")
        for name in names
        if name.startswith("labeldist.models")
    ]
    assert not found, found


def test_estimators_read_runs_only_through_the_arrays_view():
    """An estimator is given a run's arrays (runs/arrays.py: RunArrays and the readings of its
    columns) and reaches for nothing else of runs/: not the store, the run loop or its config."""
    found = [
        f"{module} imports {name}"
        for module, names in _imports(_modules()).items()
        if module.startswith("labeldist.estimators")
        for name in names
        if name.startswith("labeldist.runs") and name != "labeldist.runs.arrays"
    ]
    assert not found, found


def test_the_fast_tier_covers_every_package():
    """`make test-fast` (every test outside conftest.SLOW's whole files) imports every package
    and top-level module of labeldist: no room is left to the slow tier alone."""
    import conftest

    whole_files = {entry for entry in conftest.SLOW if "::" not in entry}
    imported = set()
    for path in sorted(Path(__file__).parent.glob("test_*.py")):
        if f"tests/{path.name}" in whole_files:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            imported |= {name.split(".")[1] for name in names if name.startswith("labeldist.")}
            if isinstance(node, ast.ImportFrom) and node.module == "labeldist":
                imported |= {alias.name for alias in node.names}
    package = Path(__file__).resolve().parents[1] / "src" / "labeldist"
    rooms = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    rooms |= {p.stem for p in package.glob("*.py") if not p.stem.startswith("_")}
    # rooms a fast test reaches through the command line rather than by importing them
    through = {"training": ("test_finetune.py", "test_encoder.py")}  # labeldist finetune; the encoder estimator
    for room, files in through.items():
        assert all(f"tests/{name}" not in whole_files and (Path(__file__).parent / name).exists() for name in files)
        imported.add(room)
    assert sorted(rooms - imported) == []
