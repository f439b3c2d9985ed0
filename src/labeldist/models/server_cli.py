"""The ``labeldist run`` options of the HTTP server backend, kept here so the command itself
only gains one decorator and a few lines."""

from __future__ import annotations

import click

SERVER_KEYS = (
    "backend",
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
    """--backend and the options of --backend openai."""
    decorators = [
        click.option(
            "--backend",
            default="hf",
            show_default=True,
            type=click.Choice(["hf", "openai"]),
            help="hf: transformers in this process; openai: an OpenAI-compatible server (vLLM, llama.cpp, TGI, "
            "SGLang, hosted APIs) at --base-url, --model naming the served model.",
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


def pop_server_settings(settings: dict, model: str):
    """Take the server options out of ``settings``; the :class:`ServerSettings` of
    ``--backend openai``, None for hf (where server options are refused, naming them)."""
    import yaml

    from labeldist.models.openai import ServerSettings

    values = {key: settings.pop(key) for key in SERVER_KEYS}
    if values["backend"] != "openai":
        given = ["--" + key.replace("_", "-") for key in ("base_url", "api_key_env", "endpoint", "tokenizer") if values[key]]
        if values["server_params"]:
            given.append("--server-param")
        if given:
            raise click.UsageError(f"{', '.join(given)} only apply to --backend openai")
        return None
    if not values["base_url"]:
        raise click.UsageError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    extra = {}
    for pair in values["server_params"]:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--server-param")
        extra[key.strip()] = yaml.safe_load(value) if value else ""
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
