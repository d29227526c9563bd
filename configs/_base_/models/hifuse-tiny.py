# HiFuse-Tiny, paper design (depthwise IRMLP 3x3), the default: the model whose cost the
# paper's tables report. The authors' released code (dense IRMLP) is the one-line switch
# `neck=dict(irmlp_depthwise=False)`: configs/hifuse/hifuse-tiny-released_<dataset>.py.
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
