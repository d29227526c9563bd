# HEMF paper Table 10, row 2 (S2) "EGF": the EGF branch alone (with its own
# stem); GAP + LN + linear on its last map (no ELF branch, no HEF blocks).
_base_ = '../hemf_isic2018.py'
model = dict(
    backbone=dict(with_local_branch=False), neck=dict(with_fusion=False))
