_base_ = [
    '../_base_/models/hifuse-tiny.py',
    '../_base_/datasets/covid19ct.py',
    '../_base_/schedules/adamw_cosine_100e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=2))
