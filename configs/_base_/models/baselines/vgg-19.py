# VGG-19 (Simonyan & Zisserman, 2015), no batch norm, from scratch: MMPretrain's `VGG` depth 19
# with its own classifier (two 4096-d fully connected layers with dropout, then num_classes);
# ClsHead only computes the loss on those scores. The classifier expects a 7 x 7 x 512 map, so
# the input must be 224 x 224 (the recipe's crop). `num_classes` is set by each leaf, on the
# backbone. The backbone initialises itself (Kaiming convolutions, normal(0.01) linears).
model = dict(
    type='ImageClassifier',
    backbone=dict(type='VGG', depth=19, num_classes=7),
    neck=None,
    head=dict(
        type='ClsHead',
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1, )),
)
