# Swin-B on COVID19-CT, trained from scratch with the HiFuse recipe (comparison baseline).
_base_ = [
    '../_base_/models/baselines/swin-base.py',
    '../_base_/baselines/recipe_covid19ct.py',
]

model = dict(head=dict(num_classes=2))
