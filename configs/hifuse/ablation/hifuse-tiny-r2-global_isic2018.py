# HiFuse paper Table 3, row 2 "+ Global Block": both branches, fused per
# stage by the fusion path; the concatenation [G, L, F^] is merged by a
# 1x1 conv + BN (no attention, no IRMLP, no shortcut).
_base_ = '../hifuse-tiny_isic2018.py'
model = dict(
    neck=dict(with_attention=False, with_irmlp=False, with_shortcut=False))
