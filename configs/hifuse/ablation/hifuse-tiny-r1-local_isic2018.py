# HiFuse paper Table 3, row 1 "Local Path": the local CNN branch alone;
# GAP + LN + linear on its last map (no global branch, no HFF blocks).
_base_ = '../hifuse-tiny_isic2018.py'
model = dict(
    backbone=dict(with_global_branch=False), neck=dict(with_fusion=False))
