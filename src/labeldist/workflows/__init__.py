"""Workflows: several runs, estimators and evaluations put together for one question: the
alignment suite (``suite``), the multi-label demonstration sweep (``sweep``) and the probe report
(``probe_report``). They sit above estimators and evaluation and below the report and the CLI."""
