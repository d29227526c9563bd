# HEMF (released code) on kvasir. Recipe = HiFuse's (AdamW 1e-4, wd 0.01, 1-epoch linear warm-up,
# cosine to 1e-6, batch 32) with the HEMF paper's 150 epochs (Table 5; the authors' train.py
# defaults to 100) and mixed precision (the authors' code trains under autocast + GradScaler).
_base_ = [
    '../_base_/models/hemf.py',
    '../_base_/datasets/kvasir.py',
    '../_base_/schedules/adamw_cosine_100e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=8))

# Mixed precision: CPUAwareAmpOptimWrapper (hifuse_mm.utils.compat; what `tools/train.py --amp`
# selects) is mmengine's AmpOptimWrapper (fp16 autocast, dynamic loss scaling) on a GPU and falls
# back to bf16 autocast without loss scaling on a CPU-only host, where AmpOptimWrapper cannot run.
optim_wrapper = dict(type='CPUAwareAmpOptimWrapper', loss_scale='dynamic')

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=1,
        end=150,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=150)
