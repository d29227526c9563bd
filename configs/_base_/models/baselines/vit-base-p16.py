# ViT-B/16 (Dosovitskiy et al., 2021) for 224 px inputs, from scratch: MMPretrain's
# `VisionTransformer` arch 'b' (12 layers, 768-d, 12 heads, MLP 3072), 16 px patches, the class
# token into a linear head (VisionTransformerClsHead, zero-initialised).
# Trained with the HiFuse recipe: plain cross-entropy, no dropout, no stochastic depth.
# The input size is fixed by `img_size` (position embeddings); `num_classes` is set by each leaf.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='VisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        drop_rate=0.0,
        drop_path_rate=0.0,
        # ViT's initialisation of the patch projection (LeCun-normal-like fan-in scaling).
        init_cfg=[dict(type='Kaiming', layer='Conv2d', mode='fan_in', nonlinearity='linear')]),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=7,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)
