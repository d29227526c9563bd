# HiFuse-Tiny, paper design (depthwise IRMLP 3x3). For the authors' released code
# (dense IRMLP) set `neck=dict(irmlp_depthwise=False)` in a child config.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='HiFuse', arch='tiny'),
    neck=dict(type='HFFNeck', in_channels=(96, 192, 384, 768)),
    head=dict(
        type='LinearClsHead',
        num_classes=7,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)
