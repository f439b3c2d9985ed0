"""The backends by name: one entry each (name -> the class, imported only when asked for).

A backend is one folder under ``models/`` (its class, its settings dataclass and whatever
computes its slots) plus one line in :data:`BACKENDS`. The class declares what it can do
(``capabilities``), its settings (``settings_class``) and how it is made (``create``); this
module turns a name and a dict of options into settings (:func:`make_settings`), checks a
run's needs against the capabilities (:func:`refusal`) and makes the backend
(:func:`make_backend`). Nothing here imports a model library: the HTTP backend stays free of
torch, and naming a backend costs only its own imports.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
import typing
from dataclasses import dataclass
from typing import Any, Protocol

from labeldist.errors import ConfigError
from labeldist.models.base import NEEDS, Backend, Capabilities


@dataclass(frozen=True)
class BackendEntry:
    """A backend's name, where its class lives (``module:Class``) and what it is, in a line."""

    name: str
    target: str
    summary: str


BACKENDS: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry("hf", "labeldist.models.hf:HFBackend", "transformers in this process (CPU or CUDA); every slot exact"),
        BackendEntry(
            "openai",
            "labeldist.models.openai:OpenAIBackend",
            "an OpenAI-compatible server (vLLM, llama.cpp, TGI, SGLang, hosted APIs) at --base-url; slots bounded "
            "from the top-k it reports, or exact from a server that takes token ids and returns every log-probability "
            "(vllm serve --max-logprobs -1, with --tokenizer; exact=true also allows --marginal)",
        ),
        BackendEntry(
            "vllm",
            "labeldist.models.vllm:VLLMBackend",
            "vLLM in this process (GPU, or its CPU build); every slot exact, the hf backend's numbers",
        ),
    )
}
DEFAULT_BACKEND = "hf"


class ModelChoice(Protocol):
    """What a backend needs of a run's settings (a ``runs.RunConfig`` has it; runs sit above
    models, so it is named here by shape, not imported)."""

    model: str
    chat: bool | None
    max_new_tokens: int


def backend_names() -> tuple[str, ...]:
    """Every registered backend's name."""
    return tuple(BACKENDS)


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name``, imported now (a ConfigError for a name not registered)."""
    entry = BACKENDS.get(name)
    if entry is None:
        raise ConfigError("--backend", None, f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    module, _, attribute = entry.target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def capabilities(name: str, settings: dict | None = None) -> Capabilities:
    """What backend ``name`` can do (under ``settings``, its settings' ``identity()``, where given)."""
    return backend_class(name).capabilities_for(settings)


def setting_names(name: str) -> tuple[str, ...]:
    """The options backend ``name`` takes (its settings dataclass's fields, but the model)."""
    return tuple(f.name for f in dataclasses.fields(backend_class(name).settings_class) if f.name != "model")


def make_settings(name: str, model: str, options: dict[str, Any] | None = None) -> Any:
    """Backend ``name``'s settings from ``options`` (keys: its :func:`setting_names`); an option
    it does not take is a ConfigError naming the backend and the options it does take."""
    settings_class = backend_class(name).settings_class
    options = dict(options or {})
    known = setting_names(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        shown = ", ".join("--" + key.replace("_", "-") for key in unknown)
        verb = "does" if len(unknown) == 1 else "do"
        raise ConfigError(
            "--backend", None, f"{shown} {verb} not apply to --backend {name} (its settings: {', '.join(known) or 'none'})"
        )
    options = {key: _typed(name, settings_class, key, value) for key, value in options.items()}
    if any(f.name == "model" for f in dataclasses.fields(settings_class)):
        options["model"] = model
    try:
        return settings_class(**options)
    except TypeError as err:  # a required setting missing
        raise ConfigError("--backend", None, f"--backend {name}: {err}") from None


def settings_for(
    backend: str | None, model: str, common: dict[str, Any], options: dict[str, Any] | None = None, server: Any = None
) -> Any:
    """The settings of a run's backend (``backend`` None: the default, or the backend whose
    settings ``server`` are). ``common``: the options every exact backend may take (``--device``,
    ``--dtype``, ``--quantization``, ``--prune-tolerance``) that were given; ``options``: the
    ``--backend-option`` values; ``server``: settings made already (the HTTP backend's), to
    which ``options`` are applied."""
    options = dict(options or {})
    if server is None:
        return make_settings(backend or DEFAULT_BACKEND, model, {**common, **options})
    name = backend_of(server)
    if backend not in (None, name):
        raise ConfigError("--backend", None, f"the server settings given are those of --backend {name}, not {backend}")
    if common:
        shown = ", ".join("--" + key.replace("_", "-") for key in sorted(common))
        verb = "does" if len(common) == 1 else "do"
        raise ConfigError("--backend", None, f"{shown} {verb} not apply to a served model (--backend {name})")
    if not options:
        return server
    given = {f.name: getattr(server, f.name) for f in dataclasses.fields(server) if f.name != "model"}
    return make_settings(name, model, {**given, **options})


def _typed(backend: str, settings_class: type, key: str, value: Any) -> Any:
    """``value`` as the type the setting declares (``1e-4`` from the command line is text to
    YAML: a float setting reads it as a number); a value that is not of that type is refused."""
    hint = typing.get_type_hints(settings_class).get(key)
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    kinds = tuple(typing.get_origin(a) or a for a in allowed)
    if value is None and type(None) in kinds:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(value, bool) and bool in kinds:
        return value
    if number and isinstance(value, int) and int in kinds:
        return value
    if float in kinds and (number or isinstance(value, str)):
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, bool | int | float) and any(k not in (bool, int, float) and isinstance(value, k) for k in kinds):
        return value
    names = " or ".join(getattr(k, "__name__", str(k)) for k in kinds)
    raise ConfigError("--backend", None, f"--backend {backend}: {key} must be {names}, not {value!r}")


def backend_of(settings: Any) -> str:
    """The registered name of the backend whose settings ``settings`` are."""
    for name in BACKENDS:
        if type(settings) is backend_class(name).settings_class:
            return name
    raise ConfigError("--backend", None, f"{type(settings).__name__} are not the settings of a registered backend")


def refusal(name: str, needs: dict[str, bool], settings: dict | None = None) -> str | None:
    """Why backend ``name`` (under ``settings``, its settings' ``identity()``) cannot serve a run
    needing ``needs`` (capability -> needed), or None."""
    can = capabilities(name, settings)
    missing = [NEEDS[key] for key, needed in needs.items() if needed and not getattr(can, key)]
    if not missing:
        return None
    able = [other for other in BACKENDS if all(getattr(capabilities(other), k) for k, v in needs.items() if v)]
    hints = [backend_class(name).instead[k] for k, v in needs.items() if v and k in backend_class(name).instead]
    hints += [f"use --backend {' or '.join(able)}"] if able else []
    return f"--backend {name} cannot serve {', '.join(missing)}" + (f" ({'; '.join(hints)})" if hints else "")


def make_backend(config: ModelChoice, settings: Any, *, progress: bool = True) -> Backend:
    """The backend that labels ``config``'s items with ``config.model`` under ``settings`` (a
    registered backend's settings dataclass)."""
    cls = backend_class(backend_of(settings))
    return cls.create(config.model, settings, chat=config.chat, max_new_tokens=config.max_new_tokens, progress=progress)
