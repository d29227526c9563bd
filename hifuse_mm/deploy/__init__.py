"""Deployment: a trained model as one ONNX file, its manifest, and onnxruntime inference.

* :mod:`.manifest` — ``model.json`` beside ``model.onnx``: classes, input size,
  preprocessing, provenance and the model file's SHA-256 (checked on every load).
* :mod:`.onnx_export` — :func:`export_logits` (``torch.onnx.export(..., dynamo=True)``) and
  the parity gate (:func:`run_parity_gate`, :class:`ParityReport`).
* :mod:`.onnx_backend` — :class:`OnnxLogitsSession`, onnxruntime on the CPU.

onnx, onnxscript and onnxruntime are the optional ``deploy`` extra: nothing here imports them
until it is used (:mod:`.dependencies`). The config-and-checkpoint side (safe loading, the
preprocessing from the config, the classifier API) is in :mod:`hifuse_mm.apis`:
:func:`hifuse_mm.apis.export_onnx` and :meth:`hifuse_mm.apis.Classifier.from_onnx`.
"""
from .dependencies import INSTALL_HINT, DeployDependencyError, import_deploy_module
from .manifest import (ManifestError, OnnxManifest, Preprocessing, manifest_path,
                       read_manifest, write_manifest)
from .onnx_backend import OnnxLogitsSession, OnnxModelError
from .onnx_export import (DEFAULT_TOLERANCE, EXPORT_IMPL, GateCheck, LogitsGraph,
                          OnnxExportError, ParityGateError, ParityReport, export_logits,
                          run_parity_gate)

__all__ = [
    'INSTALL_HINT', 'DeployDependencyError', 'import_deploy_module', 'ManifestError',
    'OnnxManifest', 'Preprocessing', 'manifest_path', 'read_manifest', 'write_manifest',
    'OnnxLogitsSession', 'OnnxModelError', 'DEFAULT_TOLERANCE', 'EXPORT_IMPL', 'GateCheck',
    'LogitsGraph', 'OnnxExportError', 'ParityGateError', 'ParityReport', 'export_logits',
    'run_parity_gate'
]
