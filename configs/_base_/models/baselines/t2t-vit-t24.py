# T2T-ViT_t-24 (Yuan et al., 2021) for 224 px inputs, from scratch: MMPretrain's `T2T_ViT`
# with the t-24 settings (transformer tokens-to-token module with 64-d tokens, then 24 layers,
# 512-d, 8 heads, MLP ratio 3) and a linear head on the class token.
# Trained with the HiFuse recipe: plain cross-entropy, no Mixup/CutMix, no label smoothing,
# no stochastic depth. `num_classes` is set by each leaf.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='T2T_ViT',
        img_size=224,
        in_channels=3,
        embed_dims=512,
        num_layers=24,
        t2t_cfg=dict(token_dims=64, use_performer=False),
        layer_cfgs=dict(num_heads=8, feedforward_channels=1536),
        drop_path_rate=0.0,
        init_cfg=[
            dict(type='TruncNormal', layer='Linear', std=0.02),
            dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0),
        ]),
    neck=None,
    head=dict(
        type='VisionTransformerClsHead',
        num_classes=7,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, ),
        init_cfg=dict(type='TruncNormal', layer='Linear', std=0.02)),
)
