# ConvNeXt-B on ISIC 2018, trained from scratch with the HiFuse recipe (comparison baseline).
_base_ = [
    '../_base_/models/baselines/convnext-base.py',
    '../_base_/baselines/recipe_isic2018.py',
]

model = dict(head=dict(num_classes=7))
