# ConvNeXt-B on the synthetic demo dataset (64 px, 8 epochs): the comparison workflow in CPU
# minutes (docs/results_example.md). Not a paper setting.
_base_ = [
    '../_base_/models/baselines/convnext-base.py',
    '../_base_/baselines/recipe_demo.py',
]

model = dict(head=dict(num_classes=4))
