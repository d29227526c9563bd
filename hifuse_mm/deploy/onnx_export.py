"""Export a classifier's logits to one ONNX file, and the parity gate that checks the file.

:func:`export_logits` writes ``head(extract_feat(images))`` of an MMPretrain
``ImageClassifier`` (what :class:`hifuse_mm.apis.Classifier` runs) with
``torch.onnx.export(..., dynamo=True)``, the ``torch.export``-based exporter, weights inside
the file. :func:`run_parity_gate` then runs the file with onnxruntime on the CPU and compares
it with the PyTorch model on the same inputs (max |logit difference| and top-1 per input);
:class:`ParityReport` holds the figures. ``hifuse_mm.apis.export`` puts both together
(``tools/deployment/export_onnx.py``).
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn

from ..models.ops.selection import use_impl
from .dependencies import import_deploy_module
from .manifest import INPUT_NAME, OUTPUT_NAME

PathLike = Union[str, Path]

#: The implementation column the ONNX graph is traced with (hifuse_mm.models.ops.selection).
#: Not ``'auto'``: its CPU column loops over the images of a batch in Python (a graph traced at
#: one batch size would hard-code it). Not
#: ``'reference'`` either: mmpretrain's ``ShiftWindowMSA.window_reverse`` (HiFuse's global
#: branch) computes the batch size as ``int(windows.shape[0] / (H * W / window ** 2))``, which
#: the exporter records as the example's batch size, so a dynamic-batch HiFuse graph silently
#: gives wrong global features at any other batch (max |logit difference| 0.06 for HiFuse-T at
#: batch 1 when traced at batch 2; the parity gate catches it). The ``'cuda'`` column (windows
#: gathered by index plans, batched scaled-dot-product attention for HiFuse's windows and
#: HEMF's MASA) traces with a symbolic batch, agrees with the reference to ~1e-6, and ran as
#: fast or faster in onnxruntime on the CPU than the reference graph (HiFuse-T and HEMF, batch
#: 1 and 8). The gate still compares the file with the model as ``tools/infer.py`` runs it.
EXPORT_IMPL = 'cuda'
#: Largest batch a dynamic-batch graph is declared for.
MAX_DYNAMIC_BATCH = 4096
#: The parity gate's bound on |logit difference| (fp32).
DEFAULT_TOLERANCE = 1e-4


#: Loggers of the exporter's packages whose notes (e.g. onnx_ir's "Attribute type is ambiguous"
#: for an empty attribute list, which it resolves itself) are kept off the tools' output.
_EXPORTER_LOGGERS = ('onnx_ir', 'onnxscript', 'torch.onnx')


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[io.StringIO]:
    """Hold back the exporter's progress prints (stdout) and its log notes below ERROR."""
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    chatter = io.StringIO()
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with contextlib.redirect_stdout(chatter):
            yield chatter
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class OnnxExportError(RuntimeError):
    """``torch.onnx.export`` failed on the model; the message has the exporter's reason."""


class LogitsGraph(nn.Module):
    """What an exported file computes: ``classifier.head(classifier.extract_feat(images))``.

    The same call as :class:`hifuse_mm.apis.Classifier`'s fp32 forward (the data
    preprocessor's normalisation stays outside the graph; the manifest records it).
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.head(self.classifier.extract_feat(images))


def export_logits(classifier: nn.Module, path: PathLike, height: int, width: int,
                  dynamic_batch: bool = False, opset: Optional[int] = None) -> int:
    """Write ``classifier``'s logits graph to ``path`` as one ONNX file.

    Args:
        classifier: An MMPretrain ``ImageClassifier`` (eval mode, CPU); its implementation
            selection is switched to :data:`EXPORT_IMPL` while tracing and restored after.
        path: The ``.onnx`` file to write (replaced if it exists).
        height, width: The input size (fixed in the graph).
        dynamic_batch: Make the batch dimension dynamic (else fixed at 1).
        opset: ONNX opset (None: the exporter's default).

    Returns:
        The opset of the written file.

    Raises:
        OnnxExportError: the exporter failed (its message, shortened).
        hifuse_mm.deploy.DeployDependencyError: onnx or onnxscript is missing.
    """
    import_deploy_module('onnx', 'ONNX export')
    import_deploy_module('onnxscript', 'ONNX export')
    example = torch.zeros(2 if dynamic_batch else 1, 3, height, width)
    dynamic = ({0: torch.export.Dim('batch', min=1, max=MAX_DYNAMIC_BATCH)}, ) \
        if dynamic_batch else None
    graph = LogitsGraph(classifier).eval()
    try:
        with use_impl(classifier, EXPORT_IMPL), torch.no_grad(), _quiet_exporter():
            program = torch.onnx.export(graph, (example, ), dynamo=True,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        opset_version=opset, dynamic_shapes=dynamic,
                                        external_data=False, optimize=True, verify=False,
                                        report=False)
    except Exception as err:  # noqa: BLE001  (the exporter raises many kinds)
        reason = str(err).strip().splitlines()
        raise OnnxExportError(f'torch.onnx.export failed: {type(err).__name__}: '
                              f'{reason[0] if reason else ""}'
                              f'{" ..." if len(reason) > 1 else ""}') from err
    program.save(str(path), external_data=False)
    return int(program.model.opset_imports.get('', opset or 0))


@dataclass
class GateCheck:
    """One line of the parity gate: a set of inputs run at one batch size.

    Attributes:
        inputs: ``'random'`` or ``'images'`` (the ``--check-images``).
        batch_size: Inputs per call (the last call may have fewer).
        count: Number of inputs.
        max_abs_diff: max |ONNX logit - PyTorch logit| over them.
        top1_mismatches: Inputs whose predicted class differs.
    """

    inputs: str
    batch_size: int
    count: int
    max_abs_diff: float
    top1_mismatches: int

    def passed(self, tolerance: float) -> bool:
        return math.isfinite(self.max_abs_diff) and self.max_abs_diff <= tolerance \
            and self.top1_mismatches == 0


#: How the gate's input sets are named for people.
_SHOWN = {'random': 'random images', 'images': 'check images'}


@dataclass
class ParityReport:
    """The parity gate's figures; passed when every check is within ``tolerance`` with the same
    top-1 on every input."""

    tolerance: float
    checks: List[GateCheck] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.passed(self.tolerance) for check in self.checks)

    @property
    def max_abs_diff(self) -> float:
        return max((check.max_abs_diff for check in self.checks), default=float('nan'))

    def lines(self) -> List[str]:
        """One line per check, for people."""
        return [f'{check.count} {_SHOWN.get(check.inputs, check.inputs)} at batch '
                f'{check.batch_size}: max '
                f'|logit difference| {check.max_abs_diff:.3g} (limit {self.tolerance:g}), '
                f'top-1 differs on {check.top1_mismatches} '
                f'[{"ok" if check.passed(self.tolerance) else "FAILED"}]'
                for check in self.checks]

    def to_dict(self) -> dict:
        """For the manifest: tolerance, the overall maximum and every check."""
        return {'tolerance': self.tolerance, 'max_abs_logit_diff': self.max_abs_diff,
                'passed': self.passed, 'checks': [asdict(check) for check in self.checks]}


class ParityGateError(RuntimeError):
    """The exported file does not compute what the PyTorch model computes.

    Attributes:
        report: The gate's figures.
    """

    def __init__(self, message: str, report: ParityReport) -> None:
        super().__init__(message)
        self.report = report


def run_parity_gate(reference: Callable[[torch.Tensor], torch.Tensor],
                    session: Callable[[np.ndarray], np.ndarray],
                    inputs: Dict[str, torch.Tensor], batch_sizes: Sequence[int],
                    tolerance: float = DEFAULT_TOLERANCE) -> ParityReport:
    """Compare ``session`` (onnxruntime) with ``reference`` (PyTorch) on every input.

    Args:
        reference: Normalised ``[B, 3, H, W]`` batch -> fp32 logits (the PyTorch model).
        session: The same for the ONNX file (:class:`~hifuse_mm.deploy.OnnxLogitsSession`).
        inputs: Named sets of normalised inputs, e.g. ``{'random': ..., 'images': ...}``
            (empty sets are left out).
        batch_sizes: Each set is run in batches of each of these sizes.
        tolerance: The bound on max |logit difference|.
    """
    report = ParityReport(tolerance=tolerance)
    for name, batch in inputs.items():
        if not len(batch):
            continue
        for size in batch_sizes:
            worst, mismatches = 0.0, 0
            for start in range(0, len(batch), size):
                chunk = batch[start:start + size]
                with torch.no_grad():
                    expected = reference(chunk).float().cpu().numpy()
                got = session(chunk.cpu().numpy())
                diff = float(np.abs(got - expected).max()) if got.shape == expected.shape \
                    else float('inf')
                worst = diff if not math.isfinite(diff) else max(worst, diff)
                if got.shape == expected.shape:
                    mismatches += int((got.argmax(1) != expected.argmax(1)).sum())
                else:
                    mismatches += len(chunk)
            report.checks.append(GateCheck(name, size, len(batch), worst, mismatches))
    return report
