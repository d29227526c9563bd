# HiFuse paper Table 3, row 3 "+ Channel & Spatial Attn".
_base_ = '../hifuse-tiny_isic2018.py'
model = dict(neck=dict(with_irmlp=False, with_shortcut=False))
