# ViT-B/32: ViT-B/16's model (vit-base-p16.py) with 32 px patches (7 x 7 tokens at 224 px).
_base_ = ['./vit-base-p16.py']

model = dict(backbone=dict(patch_size=32))
