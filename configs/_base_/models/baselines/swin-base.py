# Swin-B (Liu et al., 2021), window 7, for 224 px inputs, from scratch: MMPretrain's
# `SwinTransformer` arch 'base' (embed 128, depths 2-2-18-2, heads 4-8-16-32), global average
# pooling and a linear head on the 1024-d feature.
# Trained with the HiFuse recipe: plain cross-entropy, no Mixup/CutMix, no label smoothing,
# no stochastic depth. `num_classes` is set by each leaf.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='SwinTransformer', arch='base', img_size=224, drop_path_rate=0.0),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=7,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
        init_cfg=None),
    # Swin's from-scratch initialisation: truncated-normal linear layers, unit LayerNorms.
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0),
    ],
)
