# VGG-19 on COVID19-CT, trained from scratch with the HiFuse recipe (comparison baseline).
_base_ = [
    '../_base_/models/baselines/vgg-19.py',
    '../_base_/baselines/recipe_covid19ct.py',
]

model = dict(backbone=dict(num_classes=2))
