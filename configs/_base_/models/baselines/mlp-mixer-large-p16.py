# MLP-Mixer-L/16 (Tolstikhin et al., 2021) for 224 px inputs, from scratch: MMPretrain's
# `MlpMixer` arch 'l' (24 layers, 1024-d, token MLP 512, channel MLP 4096), 16 px patches,
# average over the tokens, linear head.
# Trained with the HiFuse recipe: plain cross-entropy, no dropout. The token-mixing MLPs fix
# the input size to `img_size`; `num_classes` is set by each leaf.
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='MlpMixer',
        arch='l',
        img_size=224,
        patch_size=16,
        drop_rate=0.0,
        init_cfg=[dict(type='Kaiming', layer='Conv2d', mode='fan_in', nonlinearity='linear')]),
    neck=dict(type='GlobalAveragePooling', dim=1),
    head=dict(
        type='LinearClsHead',
        num_classes=7,
        in_channels=1024,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)
