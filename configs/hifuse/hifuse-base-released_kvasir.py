# HiFuse-Base as the authors' released code computes it (dense IRMLP 3x3, 132.40 M parameters at
# 7 classes against the paper design's 68.98 M) with the same data and recipe as
# hifuse-base_kvasir.py. For reproducing or fine-tuning the authors' checkpoints; the unsuffixed
# configs build the paper's design (docs/models.md, "Paper vs released code").
_base_ = ['./hifuse-base_kvasir.py']

model = dict(neck=dict(irmlp_depthwise=False))
