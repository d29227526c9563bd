"""Evaluation: the registered ``MedicalMetrics`` and the test report (metrics.json, plots).

Importing this package registers ``MedicalMetrics`` and ``AtomicDumpResults`` (``--out``
predictions) in MMPretrain's ``METRICS``.
"""
from .bootstrap import bootstrap_intervals
from .functional import PER_CLASS_KEYS, SUMMARY_KEYS, Evaluation, evaluate_predictions
from .medical_metrics import LastEvaluation, MedicalMetrics, MedicalMetricWarning
from .prediction_dump import AtomicDumpResults
from .report import REPORT_FILES, write_test_report

__all__ = [
    'AtomicDumpResults', 'Evaluation', 'LastEvaluation', 'MedicalMetricWarning',
    'MedicalMetrics', 'PER_CLASS_KEYS', 'REPORT_FILES', 'SUMMARY_KEYS', 'bootstrap_intervals',
    'evaluate_predictions', 'write_test_report'
]
