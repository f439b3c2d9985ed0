"""The paper's analyses as statistics, figures and a self-contained HTML report.

- :mod:`labeldist.report.analyses`: statistics from generation runs (spikiness, entropy per
  slot, label-order accuracy, slot 1 versus the generated labels);
- :mod:`labeldist.runs.attention` (below the report, which loads no model): opt-in attention
  from label slots to the input versus to earlier labels (a second pass of the run's model with
  eager attention), drawn here;
- :mod:`labeldist.report.figures`: matplotlib (Agg) figures, PNG and PDF;
- :mod:`labeldist.report.html`: one HTML file with everything embedded;
- :mod:`labeldist.report.browser`: headless Chromium screenshots of a report, checking that
  its figures rendered.
"""

from labeldist.report.analyses import analyze_runs
from labeldist.runs.view import RunView, load_views

__all__ = ["RunView", "analyze_runs", "load_views"]
