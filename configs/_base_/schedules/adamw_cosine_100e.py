# The HiFuse/HEMF papers' recipe: AdamW (lr 1e-4, weight decay 0.01), 100 epochs, cosine decay
# after a one-epoch linear warm-up, batch 32 on one GPU.
optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=1e-4, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8),
    # No weight decay on norms, biases and other 1-D parameters (relative position bias tables
    # keep their decay, as in the papers' code).
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0),
)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    # begin/end default to the warm-up end and max_epochs; updated every iteration.
    dict(
        type='CosineAnnealingLR',
        eta_min=1e-6,
        by_epoch=True,
        begin=1,
        convert_to_iter_based=True),
]

train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# Effective only with `tools/train.py --auto-scale-lr`: lr *= total batch / base_batch_size.
auto_scale_lr = dict(base_batch_size=32)
