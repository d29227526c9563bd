# HEMF paper Table 10, row 4 (S4) "+ MHEA": row 3 with x * MHEA(LN(x)) on
# both branch maps.
_base_ = '../hemf_isic2018.py'
model = dict(neck=dict(with_spatial_channel=False, with_sirmlp=False))
