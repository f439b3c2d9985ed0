"""One error family: every error labeldist raises on purpose is a :class:`LabeldistError`, which
the command line prints as one line (exit status 2) and a notebook can catch in one clause.

The classes also derive from the built-in a caller would expect (``ValueError`` for bad input
and settings, ``RuntimeError`` for a model that cannot run), so code written against those
keeps working.
"""

from __future__ import annotations


class LabeldistError(Exception):
    """An error labeldist raises on purpose; its message says what and where."""


class _Located(LabeldistError):
    """An error at a place in a file: ``source`` (path or name), ``where`` (a line number, an
    item, a key; or None) and ``problem``, shown as "source, line N: problem"."""

    def __init__(self, source: str, where: str | int | None, problem: str):
        self.source = str(source)
        self.where = where
        self.problem = problem
        if where is None:
            location = self.source
        elif isinstance(where, int):
            location = f"{self.source}, line {where}"
        else:
            location = f"{self.source}, {where}"
        super().__init__(f"{location}: {problem}")


class DataError(_Located, ValueError):
    """Bad input data. The message names the file, the line or item, and the problem."""


class ConfigError(_Located, ValueError):
    """Settings that cannot be used (a suite file, a run config): names the file and the key."""


class TemplateError(LabeldistError, ValueError):
    """A template that cannot be used; the message names the file (if any) and the field."""


class ModelError(LabeldistError, RuntimeError):
    """A model that cannot be found, loaded or run; the message says which and why."""
