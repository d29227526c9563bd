# T2T-ViT_t-24 on Kvasir, trained from scratch with the HiFuse recipe (comparison baseline).
_base_ = [
    '../_base_/models/baselines/t2t-vit-t24.py',
    '../_base_/baselines/recipe_kvasir.py',
]

model = dict(head=dict(num_classes=8))
