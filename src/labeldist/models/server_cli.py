"""The ``labeldist run`` options that choose a backend (``--backend``, ``--backend-option``) and
those of the HTTP server backend, kept here so the command itself only gains one decorator and
a few lines."""

from __future__ import annotations

import click

from labeldist.models.registry import BACKENDS, DEFAULT_BACKEND

SERVER_KEYS = (
    "base_url",
    "api_key_env",
    "endpoint",
    "tokenizer",
    "top_logprobs",
    "concurrency",
    "timeout",
    "retries",
    "tolerance",
    "exact_tails",
    "server_params",
)


def server_options(function):
    """--backend, --backend-option and the options of --backend openai."""
    decorators = [
        click.option(
            "--backend",
            default=DEFAULT_BACKEND,
            show_default=True,
            type=click.Choice(list(BACKENDS)),
            help="; ".join(f"{entry.name}: {entry.summary}" for entry in BACKENDS.values())
            + " (labeldist backends: what each can do and its settings).",
        ),
        click.option(
            "--backend-option",
            "backend_options",
            multiple=True,
            metavar="KEY=VALUE",
            help="A setting of the chosen backend, repeatable (labeldist backends lists each backend's).",
        ),
        click.option(
            "--base-url",
            multiple=True,
            help="openai: the API root, e.g. http://127.0.0.1:8000/v1; repeat it for replicas of one model (requests "
            "spread by load, a failing replica's requests retried on the others).",
        ),
        click.option("--api-key-env", default=None, metavar="VAR", help="openai: environment variable holding the API key."),
        click.option(
            "--endpoint",
            default=None,
            type=click.Choice(["completions", "chat"]),
            help="openai: /completions (exact labels via expansion; needs --tokenizer for chat models, or --no-chat) or "
            "/chat/completions (the server's template; bounds only). Default: completions with --tokenizer or "
            "--no-chat, else chat.",
        ),
        click.option(
            "--tokenizer",
            default=None,
            help="openai: model alias, folder or hub id whose chat template renders prompts on this side.",
        ),
        click.option(
            "--top-logprobs",
            default=20,
            show_default=True,
            type=click.IntRange(min=1),
            help="openai: top tokens asked per position (vLLM caps at --max-logprobs, 20 by default).",
        ),
        click.option(
            "--concurrency", default=8, show_default=True, type=click.IntRange(min=1), help="openai: requests in flight."
        ),
        click.option(
            "--timeout", default=120.0, show_default=True, type=click.FloatRange(min=0.1), help="openai: seconds per request."
        ),
        click.option(
            "--retries",
            default=5,
            show_default=True,
            type=click.IntRange(min=0),
            help="openai: retries (exponential backoff) on connection errors, timeouts, 429 and 502-504.",
        ),
        click.option(
            "--tolerance",
            default=1e-4,
            show_default=True,
            type=click.FloatRange(min=0, max=1),
            help="openai: expand the text tree until each label's bounds are this close.",
        ),
        click.option(
            "--exact-tails/--no-exact-tails",
            default=False,
            show_default=True,
            help="openai: score labels whose tokens fall outside the top-k by echoing the prompt (costly on llama.cpp).",
        ),
        click.option(
            "--server-param",
            "server_params",
            multiple=True,
            metavar="KEY=VALUE",
            help="openai: extra request field, repeatable (llama.cpp: repeat_penalty=1.0 for plain greedy decoding).",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def pop_backend_settings(settings: dict, model: str) -> tuple[str, dict, object]:
    """Take the backend options out of ``settings``: the backend's name, its ``--backend-option``
    values, and the :class:`ServerSettings` of ``--backend openai`` (None for the others, where
    server options are refused, naming them)."""
    backend = settings.pop("backend")
    options = parse_key_values(settings.pop("backend_options"), "--backend-option")
    server = pop_server_settings(settings, model, backend)
    return backend, options, server


def parse_key_values(pairs, hint: str) -> dict:
    """KEY=VALUE pairs as a dict, each VALUE read as YAML (numbers, booleans, lists)."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint=hint)
        out[key.strip().replace("-", "_") if hint == "--backend-option" else key.strip()] = yaml.safe_load(value) if value else ""
    return out


def pop_server_settings(settings: dict, model: str, backend: str):
    """Take the server options out of ``settings``; the :class:`ServerSettings` of
    ``--backend openai``, None for the others (where server options are refused, naming them)."""
    from labeldist.models.openai import ServerSettings

    values = {key: settings.pop(key) for key in SERVER_KEYS}
    if backend != "openai":
        given = ["--" + key.replace("_", "-") for key in ("base_url", "api_key_env", "endpoint", "tokenizer") if values[key]]
        if values["server_params"]:
            given.append("--server-param")
        if given:
            raise click.UsageError(f"{', '.join(given)} only apply to --backend openai")
        return None
    if not values["base_url"]:
        raise click.UsageError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    extra = parse_key_values(values["server_params"], "--server-param")
    urls = tuple(values["base_url"])
    if len(set(urls)) != len(urls):
        raise click.BadParameter(f"a replica is given twice: {', '.join(urls)}", param_hint="--base-url")
    return ServerSettings(
        base_url=urls[0] if len(urls) == 1 else urls,
        model=model,
        api_key_env=values["api_key_env"],
        endpoint=values["endpoint"],
        tokenizer=values["tokenizer"],
        top_logprobs=values["top_logprobs"],
        concurrency=values["concurrency"],
        timeout=values["timeout"],
        retries=values["retries"],
        tolerance=values["tolerance"],
        exact_tails=values["exact_tails"],
        extra=extra,
    )
