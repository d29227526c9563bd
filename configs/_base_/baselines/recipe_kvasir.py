# The HiFuse recipe on Kvasir (8 classes; run both folds with tools/kfold.py),
# shared by every comparison baseline (configs/baselines/*_kvasir.py): the dataset, splits,
# pipelines, MedicalMetrics evaluator, AdamW + cosine 100-epoch schedule and runtime (best
# checkpoint on val macro F1) of configs/hifuse/hifuse-*_kvasir.py. A leaf adds one model
# from _base_/models/baselines/ and sets its number of classes.
# For the HEMF paper's recipe (= _base_/schedules/adamw_cosine_150e_amp.py) train with
#   tools/train.py CONFIG --amp --cfg-options train_cfg.max_epochs=150
_base_ = [
    '../datasets/kvasir.py',
    '../schedules/adamw_cosine_100e.py',
    '../default_runtime.py',
]
