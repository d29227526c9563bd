"""Use trained models: inference, CAMs, training curves, publishing checkpoints.

* :class:`Classifier` — ``Classifier(config, checkpoint).predict(images_or_paths)``
  (``tools/infer.py``); ``Classifier.from_onnx('model.onnx')`` runs an exported model with
  onnxruntime (:class:`OnnxClassifier`).
* :func:`export_onnx` — a checkpoint to ``model.onnx`` + ``model.json``, through the parity
  gate (``tools/deployment/export_onnx.py``).
* :class:`CamExplainer`, :func:`save_cam_figure` — Grad-CAM & co. on the stage-4 fused and
  branch maps (``tools/visualization/vis_cam.py``).
* :func:`load_training_log`, :func:`plot_training_curves` (``tools/analysis_tools/plot_curves.py``).
* :func:`publish_checkpoint` (``tools/model_converters/publish_model.py``).
"""
from ..utils.output_files import OutputExistsError, check_new_files, derived_paths
from .cam import CAM_METHODS, TARGETS, CamError, CamExplainer, CamResult, mean_inside_outside
from .cam_figure import save_cam_figure
from .classifier import Classifier, OnnxClassifier, Prediction
from .curves import plot_training_curves
from .deployment import ExportError, ExportResult, export_onnx
from .images import IMAGE_EXTENSIONS, ImageReadError, find_images, read_image
from .model_loading import LoadedModel, ModelLoadError, load_model
from .preprocess import ImageArrayError, ImagePreprocessor, InputSizeError
from .publish import Published, PublishError, publish_checkpoint
from .training_log import TrainingLog, TrainingLogError, load_training_log

__all__ = [
    'CAM_METHODS', 'TARGETS', 'CamError', 'CamExplainer', 'CamResult', 'mean_inside_outside',
    'save_cam_figure', 'Classifier', 'OnnxClassifier', 'Prediction', 'ExportError',
    'ExportResult', 'export_onnx', 'plot_training_curves', 'IMAGE_EXTENSIONS',
    'ImageReadError', 'find_images', 'read_image', 'LoadedModel', 'ModelLoadError', 'load_model',
    'OutputExistsError', 'check_new_files', 'derived_paths', 'ImageArrayError', 'ImagePreprocessor',
    'InputSizeError', 'Published', 'PublishError', 'publish_checkpoint', 'TrainingLog',
    'TrainingLogError', 'load_training_log'
]
