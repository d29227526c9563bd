"""The one-file HTML evaluation report (``tools/analysis_tools/report.py``,
``tools/test.py --html``).

* :func:`write_html_report`, :func:`build_html_report` (:mod:`.builder`) — Data, Results,
  Failure analysis, Run facts and the CLAIM 2024 / TRIPOD+AI checklist of one or more runs, as
  one self-contained HTML file (images embedded, no network).
* :mod:`.run_context` — a run folder as the report reads it; :mod:`.html` — the HTML pieces;
  one module per section (:mod:`.data_section`, :mod:`.results_section`,
  :mod:`.comparison_section`, :mod:`.failures_section`, :mod:`.run_facts`, :mod:`.checklist`).
"""
from .builder import HtmlReportOptions, build_html_report, print_progress, write_html_report

__all__ = ['HtmlReportOptions', 'build_html_report', 'print_progress', 'write_html_report']
