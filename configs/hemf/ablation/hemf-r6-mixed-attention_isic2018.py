# HEMF paper Table 10, row 6 (S6) "+ MHEA + CA&SA": row 3 with the full
# Mixed Attention (LN -> MHEA -> LN -> SA -> CA), no SIRMLP.
_base_ = '../hemf_isic2018.py'
model = dict(neck=dict(with_sirmlp=False))
