# HEMF paper Table 10, row 3 (S3) "ELF + EGF": both branches, fused per stage
# by the HEF fusion path (with its shortcut); the raw maps [G, L, F^] are
# concatenated (no Mixed Attention) and merged by a 1x1 conv + BN (no SIRMLP).
# The ablation code is not released; rows 1-6 are our reading of the table.
_base_ = '../hemf_isic2018.py'
model = dict(
    neck=dict(with_mhea=False, with_spatial_channel=False, with_sirmlp=False))
