# Runtime shared by every hifuse-mm config (MMPretrain old-style config).
default_scope = 'mmpretrain'

# Registers HiFuse/HEMF modules (and nothing else); makes MMPretrain's own tools
# (confusion_matrix.py, get_flops.py, test.py, ...) work with these configs.
custom_imports = dict(imports=['hifuse_mm'], allow_failed_imports=False)

# Run safety (hifuse_mm.engine.runner, SECURITY.md): checkpoints load weights-only (full
# unpickling only when trusted) and strictly; checkpoints are written atomically and signed;
# gloo on CPU-only hosts. HiFuseRunner is registered in MMPretrain's RUNNERS; the scope prefix
# lets tools that build from mmengine's root RUNNERS (MMPretrain's tools/train.py) find it.
runner_type = 'mmpretrain.HiFuseRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # The best checkpoint is chosen on the VALIDATION split (test is only used by tools/test.py),
    # by macro F1 of MedicalMetrics (hifuse_mm.evaluation); the rule must be given for f1 keys.
    # mmengine's CheckpointHook, crash-safe: atomic last_checkpoint, old checkpoints deleted
    # only after the new one is saved (hifuse_mm.engine.hooks).
    checkpoint=dict(
        type='CrashSafeCheckpointHook',
        interval=1,
        max_keep_ckpts=3,
        save_best='medical/f1_macro',
        rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)

# Run safety (hifuse_mm.engine.hooks); tools/train.py and tools/test.py add any a config drops:
# reseed the RNGs from (seed, epoch) every epoch so --resume repeats an uninterrupted run exactly;
# stop at a NaN/inf loss keeping the last good checkpoint; refuse a head whose num_classes
# differs from the dataset's; list the images --skip-bad-images left out at the end of the run.
custom_hooks = [
    dict(type='EpochReseedHook'),
    dict(type='NonFiniteLossHook'),
    dict(type='ClassCountCheckHook'),
    dict(type='BadImageReportHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # On CPU-only hosts HiFuseRunner and the tools use gloo (hifuse_mm.engine.cpu_distributed).
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
