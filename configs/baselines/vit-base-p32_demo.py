# ViT-B/32 on the synthetic demo dataset (64 px inputs: 2 x 2 patches, 8 epochs): the
# comparison workflow in CPU minutes (docs/results_example.md). Not a paper setting.
_base_ = [
    '../_base_/models/baselines/vit-base-p32.py',
    '../_base_/baselines/recipe_demo.py',
]

model = dict(backbone=dict(img_size=64), head=dict(num_classes=4))
