_base_ = [
    '../_base_/models/hifuse-tiny.py',
    '../_base_/datasets/kvasir.py',
    '../_base_/schedules/adamw_cosine_100e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=8))
