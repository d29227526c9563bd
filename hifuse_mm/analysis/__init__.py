"""Analysis of models and finished runs: complexity, speed, comparison tables, paired tests.

* :func:`load_run` (:mod:`.run_results`) — a test report (``metrics.json``) or k-fold summary
  (``kfold.json``) from a run folder.
* :func:`build_table`, :func:`write_table` (:mod:`.results_table`) — the papers' comparison
  table as Markdown, CSV and LaTeX (``tools/analysis_tools/results_table.py``).
* :func:`model_complexity`, :func:`config_complexity` (:mod:`.complexity`) — params / FLOPs of a
  model or of a config's model (``tools/analysis_tools/get_flops.py``).
* :mod:`.benchmark` — throughput, latency and memory (``tools/analysis_tools/benchmark.py``);
  :mod:`.agreement` — do predictions change with the precision and the fast paths
  (``tools/analysis_tools/precision_agreement.py``). Imported by name, not re-exported here.
* :func:`mcnemar_exact`, :func:`paired_bootstrap` (:mod:`.paired_tests`) and
  :func:`compare_predictions` (:mod:`.compare`) — paired tests of two runs on the same test
  images from their ``predictions.csv`` (``tools/analysis_tools/compare_runs.py``).
* :mod:`.html_report` — the one-file HTML evaluation report of one or more runs
  (``tools/analysis_tools/report.py``, ``tools/test.py --html``). Imported by name.
"""
from .compare import Comparison, compare_predictions, comparison_markdown
from .complexity import config_complexity, config_input_shape, model_complexity, run_complexity
from .paired_tests import (BOOTSTRAP_METRICS, PairedDifference, discordant_counts,
                           mcnemar_exact, paired_bootstrap)
from .predictions import (Predictions, load_predictions, pair_predictions, read_predictions,
                          run_predictions)
from .results_table import (COLUMNS, ResultsTable, build_table, table_paths, to_csv, to_latex,
                            to_markdown, write_table)
from .run_results import RunResult, RunResultError, load_run, locate_results

__all__ = [
    'BOOTSTRAP_METRICS', 'COLUMNS', 'Comparison', 'PairedDifference', 'Predictions',
    'ResultsTable', 'RunResult', 'RunResultError', 'build_table', 'compare_predictions',
    'comparison_markdown', 'config_complexity', 'config_input_shape', 'discordant_counts',
    'load_predictions', 'load_run', 'locate_results', 'mcnemar_exact', 'model_complexity',
    'pair_predictions', 'paired_bootstrap', 'read_predictions', 'run_complexity',
    'run_predictions', 'table_paths', 'to_csv', 'to_latex', 'to_markdown', 'write_table'
]
