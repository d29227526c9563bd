# HEMF (released code) on isic2018 with the HEMF paper's recipe (150 epochs, mixed precision).
_base_ = [
    '../_base_/models/hemf.py',
    '../_base_/datasets/isic2018.py',
    '../_base_/schedules/adamw_cosine_150e_amp.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=7))
