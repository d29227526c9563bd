"""The report's **Failure analysis**: the test images the model got wrong most confidently and
the ones it got right least confidently (CLAIM 2024 item 39), as thumbnails with the true
class, the predicted class and its probability.

Confidence is the probability of the predicted class in ``predictions.csv``. The most confident
errors are the wrong predictions with the highest confidence, the least confident correct cases
the right ones with the lowest (ties by image path, so the choice is reproducible). Each image is
read from the test ``data_root`` of the run's config. With the ``cam`` extra (``grad-cam``) and
the tested checkpoint at hand, each thumbnail gets its Grad-CAM overlay: the map of the
predicted class on the stage-4 fused map, the papers' target (:mod:`hifuse_mm.apis.cam`),
computed on the image as the test pipeline gives it to the model. Without the extra, the
checkpoint, or for a model CAMs cannot explain (a baseline without a fusion neck) the images are
shown alone and the section says why.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ...apis.cam import CamError, CamExplainer
from ...apis.cam_figure import overlay
from ...apis.images import ImageReadError, read_image
from ...apis.model_loading import ModelLoadError, load_model
from ...apis.preprocess import ImagePreprocessor, InputSizeError
from .html import Html, figure, join, missing, paragraph, tag
from .run_context import ReportPart, RunContext

#: Longest side of a thumbnail panel, in pixels.
PANEL = 200
CAM_HINT = 'pip install -e ".[cam]"'
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Case:
    """One test image of the failure analysis."""
    part: ReportPart
    index: int
    image: str
    label: int
    pred: int
    confidence: float


def select_cases(parts: Sequence[ReportPart], count: int) -> Tuple[List[Case], List[Case]]:
    """``(most confident errors, least confident correct cases)``, ``count`` of each at most,
    over the parts' predictions together."""
    cases = []
    for part in parts:
        predictions = part.predictions
        if predictions is None:
            continue
        confidence = predictions.scores[np.arange(len(predictions)), predictions.preds]
        for i, image in enumerate(predictions.images):
            cases.append(Case(part, i, image, int(predictions.labels[i]),
                              int(predictions.preds[i]), float(confidence[i])))
    errors = sorted((c for c in cases if c.pred != c.label),
                    key=lambda c: (-c.confidence, c.image))
    uncertain = sorted((c for c in cases if c.pred == c.label),
                       key=lambda c: (c.confidence, c.image))
    return errors[:count], uncertain[:count]


def _png(image_rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode('.png', cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError('the thumbnail cannot be encoded as PNG')
    return data.tobytes()


def _fit(image_rgb: np.ndarray, side: int = PANEL) -> np.ndarray:
    """Scale so the longer side is ``side`` pixels (small images are enlarged)."""
    height, width = image_rgb.shape[:2]
    scale = side / max(height, width)
    interpolation = cv2.INTER_NEAREST if scale > 2 else cv2.INTER_AREA if scale < 1 \
        else cv2.INTER_LINEAR
    return cv2.resize(image_rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                      interpolation=interpolation)


def side_by_side(panels: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """RGB panels in a row, each scaled to :data:`PANEL`, white gaps between them."""
    fitted = [_fit(p) for p in panels]
    height = max(p.shape[0] for p in fitted)
    row = []
    for k, panel in enumerate(fitted):
        pad = np.full((height, panel.shape[1], 3), 255, np.uint8)
        pad[:panel.shape[0]] = panel
        row.append(pad)
        if k < len(fitted) - 1:
            row.append(np.full((height, gap, 3), 255, np.uint8))
    return np.concatenate(row, axis=1)


def _checkpoint(part: ReportPart) -> Tuple[Optional[Path], Optional[str]]:
    recorded = part.content.get('checkpoint')
    if not isinstance(recorded, str) or not recorded:
        return None, f'{part.folder}/metrics.json records no checkpoint'
    path = Path(recorded)
    if not path.is_file():
        return None, (f'the tested checkpoint {recorded} is not found from here (build the '
                      'report in the folder the test ran in)')
    return path, None


class CamRenderer:
    """Grad-CAM overlays of one report's model, loaded on first use.

    Args:
        part: The test report (its dumped config and recorded checkpoint are used).
        device: Where the model runs (None: CUDA if available).
        trust_checkpoint: Allow full unpickling of a checkpoint that does not load
            weights-only (only for files you trust).
    """

    def __init__(self, part: ReportPart, device: Optional[str] = None,
                 trust_checkpoint: bool = False) -> None:
        self.part = part
        self.device = device
        self.trust_checkpoint = trust_checkpoint
        self.problem: Optional[str] = None
        self._explainer: Optional[CamExplainer] = None
        self._preprocessor: Optional[ImagePreprocessor] = None

    def ready(self) -> bool:
        """Load the model (once); False with :attr:`problem` set when CAMs are impossible."""
        if self._explainer is not None:
            return True
        if self.problem is not None:
            return False
        if importlib.util.find_spec('pytorch_grad_cam') is None:
            self.problem = f'the grad-cam package is not installed ({CAM_HINT})'
            return False
        config = self.part.folder / 'vis_data' / 'config.py'
        checkpoint, self.problem = _checkpoint(self.part)
        if checkpoint is None:
            return False
        if not config.is_file():
            self.problem = f'{config} (the config the test ran with) is missing'
            return False
        try:
            loaded = load_model(str(config), checkpoint, self.device,
                                trust_checkpoint=self.trust_checkpoint)
            self._preprocessor = ImagePreprocessor(loaded.cfg, loaded.model.data_preprocessor)
            self._explainer = CamExplainer(loaded.model, method='gradcam', targets=('fused', ))
        except (ModelLoadError, CamError, ValueError) as err:
            self.problem = f'the model cannot be explained: {err}'
            return False
        return True

    def render(self, paths: Sequence[Path], progress: Progress,
               batch_size: int = 8) -> Dict[Path, object]:
        """Per path ``(input RGB as the model sees it, Grad-CAM overlay, class the model
        predicts now)``, or the error (:class:`ImageReadError`, :class:`InputSizeError`,
        :class:`CamError`) that stopped it. Images of one size go through the model together,
        ``batch_size`` at a time (the model is in eval mode: each image's map is its own)."""
        assert self._preprocessor is not None and self._explainer is not None
        results: Dict[Path, object] = {}
        by_shape: Dict[tuple, list] = {}
        for path in paths:
            try:
                prepared = self._preprocessor.prepare(self._preprocessor.read(path), path=path)
            except (ImageReadError, InputSizeError) as err:
                results[path] = err
                continue
            by_shape.setdefault(tuple(prepared.packed.shape), []).append((path, prepared))
        chunks = [group[i:i + batch_size] for group in by_shape.values()
                  for i in range(0, len(group), batch_size)]
        for number, chunk in enumerate(chunks, 1):
            progress(f'Grad-CAM of {self.part.name}: batch {number}/{len(chunks)} '
                     f'({len(chunk)} images)')
            try:
                explained = self._explainer.explain(
                    self._preprocessor.batch([prepared for _, prepared in chunk]))
            except CamError as err:
                results.update({path: err for path, _ in chunk})
                continue
            for (path, prepared), result in zip(chunk, explained):
                results[path] = (prepared.shown, overlay(prepared.shown, result.maps['fused']),
                                 result.predicted)
        return results


def _image_path(root: Optional[str], image: str) -> Path:
    path = Path(image)
    return path if path.is_absolute() or not root else Path(root) / path


def _case_figure(context: RunContext, case: Case, rendered: object,
                 problems: List[str]) -> Html:
    """One thumbnail: the Grad-CAM pair when ``rendered`` holds it, else the image alone."""
    classes = case.part.predictions.classes
    caption = (f'true {classes[case.label]}, predicted {classes[case.pred]} '
               f'(p = {case.confidence:.3f}); {case.image}'
               + (f' [{case.part.name}]' if len(context.detail) > 1 else ''))
    if isinstance(rendered, tuple):
        shown, cam, now = rendered
        if now != case.pred:
            caption += (f'; note: the checkpoint now predicts {classes[now]} (test-time '
                        'augmentation, or not the tested checkpoint?)')
        return figure(_png(side_by_side([shown, cam])),
                      caption + '; right: Grad-CAM of the predicted class',
                      f'{case.image} and its Grad-CAM overlay', class_='case')
    if isinstance(rendered, (InputSizeError, CamError)):
        problems.append(f'{case.image}: no Grad-CAM ({rendered})')
    try:
        image = read_image(_image_path(context.data_root(), case.image))
    except ImageReadError as err:
        problems.append(f'{case.image}: {err}')
        return tag('p', f'{caption}: the image cannot be shown ({err})', class_='missing')
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return figure(_png(side_by_side([rgb])), caption, case.image, class_='case')


def _grad_cams(context: RunContext, cases: Sequence[Case], device: Optional[str],
               trust_checkpoint: bool, problems: List[str],
               progress: Progress) -> Dict[tuple, object]:
    """Grad-CAM pairs of ``cases`` by ``(id(part), image)``, one model per report part."""
    rendered: Dict[tuple, object] = {}
    by_part: Dict[int, List[Case]] = {}
    for case in cases:
        by_part.setdefault(id(case.part), []).append(case)
    for group in by_part.values():
        part = group[0].part
        progress(f'{context.label}: loading the model of {part.name} for Grad-CAM')
        renderer = CamRenderer(part, device, trust_checkpoint)
        if not renderer.ready():
            problems.append(f'{part.name}: {renderer.problem}')
            continue
        paths = {case.image: _image_path(context.data_root(), case.image) for case in group}
        results = renderer.render(list(dict.fromkeys(paths.values())), progress)
        rendered.update({(id(part), image): results[path] for image, path in paths.items()})
    return rendered


def failures_for_run(context: RunContext, count: int, cam: bool, device: Optional[str],
                     trust_checkpoint: bool, progress: Progress) -> Tuple[Html, bool]:
    """The failure analysis block of one run, and whether it holds Grad-CAM overlays."""
    parts: List[object] = [tag('h3', context.label)]
    usable = [p for p in context.detail if p.predictions is not None]
    if not usable:
        return join([*parts, missing('The failure analysis', context.predictions_problem(),
                                     'test again with tools/test.py, without --no-report')]), \
            False
    errors, uncertain = select_cases(usable, count)
    cam_problems: List[str] = []
    if not cam:
        cam_problems.append('skipped (--no-cam)')
    elif importlib.util.find_spec('pytorch_grad_cam') is None:
        cam_problems.append(f'the grad-cam package is not installed ({CAM_HINT})')
        cam = False
    if context.data_root() is None:
        parts.append(missing('The images', 'the run\'s data folder is unknown (no config)'))
    rendered = _grad_cams(context, errors + uncertain, device, trust_checkpoint, cam_problems,
                          progress) if cam and errors + uncertain else {}
    image_problems: List[str] = []
    progress(f'{context.label}: failure analysis of {len(errors) + len(uncertain)} images')
    for title, cases, empty in (
            (f'The {count} most confident errors', errors, 'no test image was misclassified'),
            (f'The {count} least confident correct cases', uncertain,
             'no test image was classified correctly')):
        parts.append(tag('h4', title))
        if not cases:
            parts.append(paragraph(f'None: {empty}.'))
            continue
        figures = [_case_figure(context, case, rendered.get((id(case.part), case.image)),
                                image_problems) for case in cases]
        parts.append(Html(f'<div class="gallery">{join(figures)}</div>'))
    with_cam = any(isinstance(value, tuple) for value in rendered.values())
    if cam_problems:
        parts.insert(1, missing('Grad-CAM overlays', '; '.join(dict.fromkeys(cam_problems)),
                                None if not cam else 'the images are shown without them'))
    elif with_cam:
        parts.insert(1, paragraph('Each image is shown as the model sees it (after the test '
                                  'pipeline), next to its Grad-CAM map of the predicted class '
                                  'on the stage-4 fused map.'))
    if image_problems:
        parts.append(tag('p', 'Not shown: ' + '; '.join(image_problems), class_='missing'))
    return join(parts), with_cam
