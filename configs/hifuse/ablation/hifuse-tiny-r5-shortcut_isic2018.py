# HiFuse paper Table 3, row 5 "+ Shortcut" = HiFuse-Tiny.
_base_ = '../hifuse-tiny_isic2018.py'
