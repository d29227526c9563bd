# Shared primitive of the medical datasets: a prepared folder with meta/{train,val,test}.txt
# ("relative/path.jpg <class index>" per line, paths relative to data_root; written by
# tools/dataset_converters/prepare_*.py) and the papers' 224px pipelines. A dataset config sets
# the registered dataset type (ISIC2018, Kvasir, COVID19CT), data_root, classes and num_classes.
# MedicalImageDataset (hifuse_mm.datasets) reads any such folder, classes from meta/classes.txt.
dataset_type = 'MedicalImageDataset'

# Images are normalised to [-1, 1] as in the papers' code (mean = std = 0.5 in [0, 1] units).
data_preprocessor = dict(
    num_classes=None, mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5], to_rgb=True)

train_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

# persistent_workers is turned off by the tools when num_workers == 0.
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root='',
        ann_file='meta/train.txt',
        data_prefix='',
        pipeline=train_pipeline),
)
# The best checkpoint is selected on val; test is held out for tools/test.py.
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root='',
        ann_file='meta/val.txt',
        data_prefix='',
        pipeline=test_pipeline),
)
test_dataloader = dict(
    batch_size=32,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root='',
        ann_file='meta/test.txt',
        data_prefix='',
        pipeline=test_pipeline),
)

# hifuse_mm.evaluation.MedicalMetrics: medical/{accuracy, balanced_accuracy, precision_macro,
# recall_macro, f1_macro, mcc, kappa, auc} (fractions in [0, 1]) and a per-class table in the
# log. The best checkpoint is chosen on val by medical/f1_macro (default_runtime.py).
val_evaluator = dict(type='MedicalMetrics')
test_evaluator = val_evaluator
