# ConvNeXt-B (Liu et al., 2022) for the comparison tables, from scratch. Architecture of
# MMPretrain's `ConvNeXt` arch 'base' (depths 3-3-27-3, widths 128-256-512-1024); the backbone
# pools and normalises, so the head reads the 1024-d vector directly.
# Trained with the HiFuse recipe: plain cross-entropy, no Mixup/CutMix, no label smoothing,
# no stochastic depth (HiFuse itself trains without it). `num_classes` is set by each leaf.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ConvNeXt', arch='base', drop_path_rate=0.0),
    head=dict(
        type='LinearClsHead',
        num_classes=7,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
        init_cfg=None),
    # ConvNeXt's own from-scratch initialisation (truncated normal, std 0.02, zero bias).
    init_cfg=dict(type='TruncNormal', layer=['Conv2d', 'Linear'], std=0.02, bias=0.0),
)
