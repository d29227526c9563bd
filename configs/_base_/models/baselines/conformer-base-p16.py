# Conformer-B, patch 16 (Peng et al., 2021), from scratch: MMPretrain's `Conformer` arch 'base'
# (576-d transformer branch, 9 heads, 12 blocks, CNN channel ratio 6). The two branches each
# have a classifier (ConformerHead on the 1536-d CNN and 576-d class-token features): training
# adds both losses, prediction averages both scores.
# Trained with the HiFuse recipe: plain cross-entropy, no Mixup/CutMix, no stochastic depth.
# `num_classes` is set by each leaf.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='Conformer', arch='base', patch_size=16, drop_path_rate=0.0),
    neck=None,
    head=dict(
        type='ConformerHead',
        num_classes=7,
        in_channels=[1536, 576],
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
        init_cfg=None),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0),
    ],
)
