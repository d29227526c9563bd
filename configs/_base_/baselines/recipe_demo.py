# The demo recipe on the synthetic demo dataset, shared by configs/hifuse/hifuse-tiny_demo.py
# (`make demo`) and the demo baselines: 64 px crops, batch 16, 8 epochs at lr 5e-4. Only for
# trying the tools in CPU minutes (docs/results_example.md); not a paper setting.
_base_ = [
    '../datasets/medical_224px.py',
    '../schedules/adamw_cosine_100e.py',
    '../default_runtime.py',
]

data_root = 'work_dirs/demo/data/'
classes = ['round-brown', 'irregular-dark', 'red-dotted', 'tan-striped']

data_preprocessor = dict(num_classes=4)

train_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=64, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='ResizeEdge', scale=72, edge='short'),
    dict(type='CenterCrop', crop_size=64),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    dataset=dict(data_root=data_root, classes=classes, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(data_root=data_root, classes=classes, pipeline=test_pipeline))
test_dataloader = dict(
    batch_size=32,
    num_workers=0,
    dataset=dict(data_root=data_root, classes=classes, pipeline=test_pipeline))

optim_wrapper = dict(optimizer=dict(lr=5e-4))
train_cfg = dict(max_epochs=8)
# Keep one epoch checkpoint (each holds AdamW state, ~650 MB for HiFuse-Tiny) besides the best.
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(max_keep_ckpts=1))
