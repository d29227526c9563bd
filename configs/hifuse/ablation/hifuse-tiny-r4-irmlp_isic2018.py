# HiFuse paper Table 3, row 4 "+ IRMLP".
_base_ = '../hifuse-tiny_isic2018.py'
model = dict(neck=dict(with_shortcut=False))
