# HEMF paper Table 10, row 7 (S7) "+ SIRMLP" = HEMF (released code).
_base_ = '../hemf_isic2018.py'
