# DeiT-B (Touvron et al., 2021), the plain (not distilled) model, for 224 px inputs, from
# scratch: MMPretrain's `VisionTransformer` arch 'deit-base' (12 layers, 768-d, 12 heads,
# MLP 3072, 16 px patches). Its architecture is ViT-B/16's; without DeiT's distillation and
# augmentation recipe (we train every model with the HiFuse recipe) it differs from
# vit-base-p16.py only in DeiT's initialisation (truncated-normal linear layers).
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='deit-base',
        img_size=224,
        patch_size=16,
        drop_rate=0.0,
        drop_path_rate=0.0),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=7,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0),
    ],
)
