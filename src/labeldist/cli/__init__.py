"""The ``labeldist`` command: one module per command group, thin over the packages (parse
options, call, print). ``main`` is the entry point."""

from labeldist.cli import data, encoder, evaluate, prompts, runs, workflows  # noqa: F401  (registers the commands)
from labeldist.cli.main import cli, main

__all__ = ["cli", "main"]
