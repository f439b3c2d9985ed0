"""Options and helpers shared by the commands: dataset options, loader options, the run config file."""

from __future__ import annotations

from pathlib import Path

import click

from labeldist.data import load_dataset

DATA_DIR_HELP = "Folder (or file, for generic tables) holding the dataset in its official layout."


def parse_options(pairs: tuple[str, ...]) -> dict:
    """``--option key=value`` pairs; values are read as YAML scalars/lists (``keep=[a, b]``)."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--option")
        options[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else ""
    return options


def dataset_options(*, name_as: str = "argument", split: str | None = "dev", ids: bool = True):
    """The options of every command that loads a dataset, defined once: the dataset's name (an
    argument, or ``--dataset`` with ``name_as="option"``), --data-dir, --split (default ``split``;
    None leaves it to the command), --grouping, --task, --ids (unless ``ids=False``) and --option."""

    def decorate(function):
        if name_as == "argument":
            name = click.argument("name")
        else:
            name = click.option("--dataset", "name", required=True, help="Dataset name (labeldist data list).")
        decorators = [name, click.option("--data-dir", required=True, type=click.Path(path_type=Path), help=DATA_DIR_HELP)]
        if split is not None:
            decorators.append(
                click.option("--split", default=split, show_default=True, help="Split to load; join splits with '+' (dev+test).")
            )
        decorators += [
            click.option(
                "--grouping",
                default=None,
                help="Label grouping: a built-in name (goemotions: paper-7, ekman, sentiment) or a JSON file.",
            ),
            click.option("--task", default=None, help="Task for datasets with several (hatexplain: label, target)."),
        ]
        if ids:
            decorators.append(
                click.option(
                    "--ids",
                    default=None,
                    type=click.Path(path_type=Path),
                    help="Keep only the ids listed in this file (one per line).",
                )
            )
        decorators.append(
            click.option(
                "--option",
                "options",
                multiple=True,
                metavar="KEY=VALUE",
                help="Loader option, repeatable (e.g. raw_dir=..., fold_rare=20); `labeldist data list` shows each "
                "loader's options (table: id_column, text_column, label_columns, label_list_column, annotator_column, ...). "
                "In a --config file: option: {key: value}.",
            )
        )
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return decorate


def load_from_cli(name, data_dir, split, grouping, task, ids, options):
    """Load the dataset a command names, passing its ``--option key=value`` pairs to the loader as keyword arguments."""
    return load_dataset(name, data_dir, split, grouping=grouping, task=task, ids=ids, **parse_options(options))


def load_training_split(name, data_dir, split, grouping, task, ids, options, limit):
    """The training split a training command names (its first ``limit`` items if given), and
    the description of where it came from that the trained model's manifest records."""
    train = load_from_cli(name, data_dir, split, grouping, task, ids, options)
    if limit:
        train = train.restrict(train.ids[:limit], source=f"first {limit}")
    source = {
        "name": name,
        "data_dir": str(Path(data_dir).resolve()),
        "split": split,
        "grouping": grouping,
        "task": task,
        "options": parse_options(options),
        "ids": str(ids) if ids else None,
        "limit": limit,
    }
    return train, source


def prompt_options(function):
    """Options that decide how prompts are built (shared with `labeldist run`)."""
    decorators = [
        click.option("--pool-split", default="train", show_default=True, help="Split the demonstrations come from."),
        click.option("--shots", default=10, show_default=True, type=click.IntRange(min=0), help="Demonstrations per prompt."),
        click.option("--seed", default=0, show_default=True, type=int, help="Seed of the demonstration sampler."),
        click.option(
            "--sampler",
            default="random",
            show_default=True,
            type=click.Choice(["random", "balanced", "covering", "similarity"]),
            help="How demonstrations are chosen.",
        ),
        click.option(
            "--multilabel-share",
            default=None,
            type=click.FloatRange(0, 1),
            help="Share of demonstrations with 2+ labels (random and balanced samplers).",
        ),
        click.option(
            "--demonstrations",
            default="shared",
            show_default=True,
            type=click.Choice(["shared", "per-item"]),
            help="The same demonstrations for every item (the original protocol; the run computes them once) or a draw per item.",
        ),
        click.option(
            "--answer-format",
            "answer_format",
            default="json",
            show_default=True,
            type=click.Choice(["json", "comma", "and"]),
            help="How the model writes its labels.",
        ),
        click.option(
            "--template",
            default=None,
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="YAML template with system, instruction, demonstration and query (--method unary/pairwise: any of "
            "system, instruction, query, candidate, answers, answer_lead, none_label; see docs).",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def load_config_file(ctx, param, value):
    """``--config run.yaml``: option values from a YAML mapping (keys as the long option
    names, with - or _); options given on the command line win."""
    if not value:
        return value
    import yaml

    try:
        loaded = yaml.safe_load(Path(value).read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise click.BadParameter(f"{value}: invalid YAML: {err}") from None
    if not isinstance(loaded, dict):
        raise click.BadParameter(f"{value}: expected a mapping of option names to values")
    params = {p.name: p for p in ctx.command.params}
    defaults = {}
    for key, setting in loaded.items():
        name = str(key).replace("-", "_")
        if name == "dataset":
            name = "name"
        if name == "option":  # the option is --option; its parameter is called options
            name = "options"
        if name not in params or name == "config":
            raise click.BadParameter(f"{value}: unknown setting {key!r}")
        if name == "options" and isinstance(setting, dict):
            setting = [f"{k}={v}" for k, v in setting.items()]
        problem = _type_problem(params[name], setting)
        if problem:
            raise click.BadParameter(f"{value}: {key}: {problem}")
        if getattr(params[name], "multiple", False) and setting is not None and not isinstance(setting, list):
            setting = [setting]  # base_url: one URL, or a list of replicas
        defaults[name] = setting
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _type_problem(param: click.Parameter, setting) -> str | None:
    """Why a config file's value cannot be the option's (None if it can): YAML gives numbers,
    mappings and lists that click would otherwise coerce silently (``seed: 1.5`` -> 1,
    ``model: {a: 1}`` -> "{'a': 1}")."""
    if setting is None:
        return None
    if getattr(param, "multiple", False):
        values = setting if isinstance(setting, list) else [setting]
        bad = [v for v in values if isinstance(v, dict | list)]
        return f"expected a list of plain values, got {setting!r}" if bad else None
    kind = param.type
    if getattr(param, "is_flag", False) or isinstance(kind, click.types.BoolParamType):
        return None if isinstance(setting, bool) else f"expected true or false, got {setting!r}"
    if isinstance(kind, click.types.IntParamType):  # IntRange too
        return None if isinstance(setting, int) and not isinstance(setting, bool) else f"expected a whole number, got {setting!r}"
    if isinstance(kind, click.types.FloatParamType):  # FloatRange too
        ok = isinstance(setting, int | float) and not isinstance(setting, bool)
        return None if ok else f"expected a number, got {setting!r}"
    if isinstance(setting, dict | list):
        return f"expected a single value, got {setting!r}"
    return None
