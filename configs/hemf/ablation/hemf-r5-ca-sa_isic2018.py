# HEMF paper Table 10, row 5 (S5) "+ CA&SA": row 3 with CA(SA(LN(x))) on
# both branch maps (no MHEA).
_base_ = '../hemf_isic2018.py'
model = dict(neck=dict(with_mhea=False, with_sirmlp=False))
