"""Which kind of host a run is on (mmengine's device detection)."""
from mmengine.device import get_device


def on_cpu_only_host() -> bool:
    """True when mmengine found no accelerator (CUDA, NPU, MLU, MUSA, MPS)."""
    return get_device() == 'cpu'
