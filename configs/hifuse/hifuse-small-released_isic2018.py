# HiFuse-Small as the authors' released code computes it (dense IRMLP 3x3, 121.66 M parameters at
# 7 classes against the paper design's 58.25 M) with the same data and recipe as
# hifuse-small_isic2018.py. For reproducing or fine-tuning the authors' checkpoints; the unsuffixed
# configs build the paper's design (docs/models.md, "Paper vs released code").
_base_ = ['./hifuse-small_isic2018.py']

model = dict(neck=dict(irmlp_depthwise=False))
