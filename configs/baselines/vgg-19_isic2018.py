# VGG-19 on ISIC 2018, trained from scratch with the HiFuse recipe (comparison baseline).
_base_ = [
    '../_base_/models/baselines/vgg-19.py',
    '../_base_/baselines/recipe_isic2018.py',
]

model = dict(backbone=dict(num_classes=7))
