# HiFuse-Tiny (paper mode) on the synthetic demo dataset (hifuse_mm.datasets.make_demo_dataset):
# the demo recipe (64px inputs, batch 16, 8 epochs, a higher lr than the papers' 1e-4 so it
# learns from scratch in a few minutes on 2 CPU cores). Used by `make demo` / tools/demo.py.
_base_ = [
    '../_base_/models/hifuse-tiny.py',
    '../_base_/baselines/recipe_demo.py',
]

model = dict(head=dict(num_classes=4))
