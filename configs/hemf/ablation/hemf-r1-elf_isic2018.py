# HEMF paper Table 10, row 1 (result.ipynb S1) "ELF": the ELF branch alone;
# GAP + LN + linear on its last map (no EGF branch, no HEF blocks).
_base_ = '../hemf_isic2018.py'
model = dict(
    backbone=dict(with_global_branch=False), neck=dict(with_fusion=False))
