"""Known harmless warnings of this stack, silenced by the tools.

mmcv-lite has no compiled ops, so mmcv.cnn.bricks.transformer warns that it cannot import
MultiScaleDeformableAttention (never used by classifiers; notes section 4.2). mmengine's AMP code
uses the deprecated torch.cuda.amp.{GradScaler,autocast} and torch.get_autocast_gpu_dtype()
(https://github.com/open-mmlab/mmengine/pull/1564, /1675).
"""
import warnings

HARMLESS_WARNINGS = (
    (UserWarning, r'Fail to import ``MultiScaleDeformableAttention``'),
    (FutureWarning, r'`torch\.cuda\.amp\.(GradScaler|autocast)\(args\.\.\.\)` is deprecated'),
    (DeprecationWarning, r'torch\.get_autocast_gpu_dtype\(\) is deprecated'),
)


def install() -> None:
    """Ignore :data:`HARMLESS_WARNINGS` (process-wide warning filters)."""
    for category, message in HARMLESS_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category)
