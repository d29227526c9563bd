# The HEMF paper's recipe: HiFuse's (AdamW 1e-4, wd 0.01, 1-epoch linear warm-up, cosine to 1e-6,
# batch 32) with 150 epochs (HEMF Table 5; the authors' train.py defaults to 100) and mixed
# precision (the authors' code trains under autocast + GradScaler).
_base_ = ['./adamw_cosine_100e.py']

# CPUAwareAmpOptimWrapper (hifuse_mm.engine.cpu_amp_optim_wrapper; what `tools/train.py --amp`
# selects) is mmengine's AmpOptimWrapper (fp16 autocast, dynamic loss scaling) on a GPU and
# bf16 autocast without loss scaling on a CPU-only host, where AmpOptimWrapper cannot run.
optim_wrapper = dict(type='CPUAwareAmpOptimWrapper', loss_scale='dynamic')

# The cosine stage ends at max_epochs (mmengine's default `end`).
train_cfg = dict(max_epochs=150)
