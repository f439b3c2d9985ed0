"""The ``labeldist`` group and its entry point (known errors: one line, exit status 2)."""

from __future__ import annotations

import os

import click

from labeldist.errors import LabeldistError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="labeldist")
def cli():
    """Per-slot label distributions of causal LMs on multi-label data, and their alignment
    with human annotators."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: known errors become one line on stderr and exit status 2."""
    try:
        cli.main(args=argv, prog_name="labeldist", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    except LabeldistError as err:
        click.echo(f"error: {err}", err=True)
        return 2
    except OSError as err:
        # a full disk, a read-only file system, a path under a file: one line naming the path
        # (what was recorded before stays whole: every write is atomic)
        if os.environ.get("LABELDIST_DEBUG"):
            raise
        where = err.filename or "a file"
        click.echo(f"error: {where}: {err.strerror or err}", err=True)
        return 2
    except ValueError as err:
        # settings that cannot work together (a sampler that cannot cover the labels, a label
        # set a format cannot write, ...); LABELDIST_DEBUG=1 shows the traceback
        if os.environ.get("LABELDIST_DEBUG"):
            raise
        click.echo(f"error: {err}", err=True)
        return 2
    except click.exceptions.Exit as err:
        return err.exit_code
    return 0
