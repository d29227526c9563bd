# The HiFuse recipe on ISIC 2018 (7 classes),
# shared by every comparison baseline (configs/baselines/*_isic2018.py): the dataset, splits,
# pipelines, MedicalMetrics evaluator, AdamW + cosine 100-epoch schedule and runtime (best
# checkpoint on val macro F1) of configs/hifuse/hifuse-*_isic2018.py. A leaf adds one model
# from _base_/models/baselines/ and sets its number of classes.
# For the HEMF paper's recipe (= _base_/schedules/adamw_cosine_150e_amp.py) train with
#   tools/train.py CONFIG --amp --cfg-options train_cfg.max_epochs=150
_base_ = [
    '../datasets/isic2018.py',
    '../schedules/adamw_cosine_100e.py',
    '../default_runtime.py',
]
