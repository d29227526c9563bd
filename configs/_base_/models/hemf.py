# HEMF as released (Esgjgd/HEMF, factory `HEMF`): SIRMLP 3x3 dense, which produced the paper's
# numbers (66.68 M parameters with 7 classes). The paper's text draws a depthwise SIRMLP 3x3: set
# `neck=dict(sirmlp_depthwise=True)` in a child config (61.23 M, 8.97 GMACs).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='HEMF', arch='default'),
    neck=dict(type='HEFNeck', in_channels=(96, 192, 384, 768)),
    head=dict(
        type='LinearClsHead',
        num_classes=7,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)
