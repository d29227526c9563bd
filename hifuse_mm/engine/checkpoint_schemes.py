"""Safe loaders for every checkpoint scheme mmengine knows: fetch with the scheme's transport,
load through :mod:`hifuse_mm.engine.safe_checkpoint`.

mmengine's ``CheckpointLoader`` picks a loader by the name's prefix. Its own loaders unpickle
what they fetch with ``torch.load``'s defaults or fully (``http(s)://`` goes through
``torch.hub.load_state_dict_from_url``, whose ``weights_only`` defaults to False), so a
checkpoint given by URL could run code. The loaders here keep each scheme's way of *fetching*
and *naming* (the same model-zoo tables, the same download cache, the same distributed
download on local rank 0 first) and hand the bytes or the downloaded file to
:func:`~hifuse_mm.engine.safe_checkpoint.load_fetched_checkpoint`: weights-only with our
allowlist, full unpickling only with ``--trust-checkpoint``, otherwise refused with a message.

=============================== ==========================================================
prefix                          fetched by
=============================== ==========================================================
``''`` (a local path)           :func:`~hifuse_mm.engine.safe_checkpoint.load_from_local`
``http://``, ``https://``       ``torch.hub.download_url_to_file`` into torch's hub cache
                                (``$TORCH_HOME/hub/checkpoints/<file name>``, reused if
                                there, as torch and mmengine do)
``torchvision://``,             the URL in mmengine's torchvision table, then as http
``modelzoo://``
``open-mmlab://``,              the URL in mmengine's OpenMMLab table, then as http (or the
``openmmlab://``                file it names under ``$MMENGINE_HOME``)
``mmcls://``                    the URL in mmengine's mmcls table, then as http; converted
                                as mmengine does (``backbone.`` keys)
``s3://``, ``petrel://``        the bytes from mmengine's ``petrel`` file backend
(also ``<name>:s3://``)
``pavi://``                     ``pavi.modelcloud`` download into a temporary folder
any other registered prefix     refused (:class:`UnsupportedCheckpointSourceError`): a loader
                                we do not know may unpickle anything
=============================== ==========================================================

:func:`safe_loader_for` maps a registered prefix (and the loader there) to ours;
:mod:`~hifuse_mm.engine.mmengine_patches` puts them in place.
"""
from __future__ import annotations

import os
import sys
from tempfile import TemporaryDirectory
from typing import Any, Callable, Dict, Optional
from urllib.parse import urlparse

import torch

from .safe_checkpoint import (UnsupportedCheckpointSourceError, load_fetched_checkpoint,
                              load_from_local)

Loader = Callable[..., Any]


def _download(url: str, model_dir: Optional[str] = None, progress: Optional[bool] = None) -> str:
    """The local copy of ``url`` in torch's hub cache (downloaded if not there yet)."""
    if model_dir is None:
        model_dir = os.path.join(torch.hub.get_dir(), 'checkpoints')
    name = os.path.basename(urlparse(url).path)
    if not name or name in ('.', '..'):
        raise UnsupportedCheckpointSourceError(url, 'the URL names no file to download')
    os.makedirs(model_dir, exist_ok=True)
    cached = os.path.join(model_dir, name)
    if not os.path.exists(cached):
        sys.stderr.write(f'Downloading: "{url}" to {cached}\n')
        # Downloads to a temporary file and moves it into place when complete.
        torch.hub.download_url_to_file(
            url, cached, None, progress=os.isatty(0) if progress is None else progress)
    return cached


def load_from_http(filename: str, map_location: Any = None, model_dir: Optional[str] = None,
                   progress: Optional[bool] = None) -> Any:
    """``http(s)://``: download (local rank 0 first, as mmengine does), then load safely."""
    from mmengine.dist import get_dist_info
    rank, world_size = get_dist_info()
    if rank == 0:
        cached = _download(filename, model_dir, progress)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            cached = _download(filename, model_dir, progress)
    return load_fetched_checkpoint(cached, filename, map_location)


def _zoo_url(table: Dict[str, str], name: str, filename: str) -> str:
    if name not in table:
        raise UnsupportedCheckpointSourceError(
            filename, f'{name!r} is not in mmengine\'s model table for this scheme')
    return table[name]


def load_from_torchvision(filename: str, map_location: Any = None) -> Any:
    """``torchvision://NAME`` (and the deprecated ``modelzoo://NAME``)."""
    from mmengine.runner.checkpoint import get_torchvision_models
    name = filename.split('://', 1)[1]
    return load_from_http(_zoo_url(get_torchvision_models(), name, filename), map_location)


def load_from_openmmlab(filename: str, map_location: Any = None) -> Any:
    """``open-mmlab://NAME`` / ``openmmlab://NAME``: a URL, or a file under mmengine's home."""
    from mmengine.runner.checkpoint import (_get_mmengine_home, get_deprecated_model_names,
                                            get_external_models)
    name = filename.split('://', 1)[1]
    name = get_deprecated_model_names().get(name, name)
    url = _zoo_url(get_external_models(), name, filename)
    if url.startswith(('http://', 'https://')):
        return load_from_http(url, map_location)
    path = os.path.join(_get_mmengine_home(), url)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} can not be found.')
    return load_fetched_checkpoint(path, filename, map_location)


def load_from_mmcls(filename: str, map_location: Any = None) -> Any:
    """``mmcls://NAME``: as http, then mmengine's conversion of MMClassification weights."""
    from mmengine.runner.checkpoint import _process_mmcls_checkpoint, get_mmcls_models
    name = filename.split('://', 1)[1]
    checkpoint = load_from_http(_zoo_url(get_mmcls_models(), name, filename), map_location)
    return _process_mmcls_checkpoint(checkpoint)


def load_from_ceph(filename: str, map_location: Any = None, backend: str = 'petrel') -> Any:
    """``s3://`` / ``petrel://`` (also ``<name>:s3://``): the bytes from mmengine's backend."""
    from mmengine.fileio import get_file_backend
    data = get_file_backend(filename, backend_args={'backend': backend}).get(filename)
    return load_fetched_checkpoint(bytes(data), filename, map_location)


def load_from_pavi(filename: str, map_location: Any = None) -> Any:
    """``pavi://PATH``: downloaded from PAVI's model cloud into a temporary folder."""
    try:
        from pavi import modelcloud
    except ImportError:
        raise ImportError('Please install pavi to load checkpoint from modelcloud.') from None
    model = modelcloud.get(filename[len('pavi://'):])
    with TemporaryDirectory() as folder:
        downloaded = os.path.join(folder, model.name)
        model.download(downloaded)
        return load_fetched_checkpoint(downloaded, filename, map_location)


#: Our loader for each prefix mmengine registers (mmengine 0.10.7, onedl-mmengine 0.10.12).
SAFE_LOADERS: Dict[str, Loader] = {
    '': load_from_local,
    'http://': load_from_http,
    'https://': load_from_http,
    'modelzoo://': load_from_torchvision,
    'torchvision://': load_from_torchvision,
    'open-mmlab://': load_from_openmmlab,
    'openmmlab://': load_from_openmmlab,
    'mmcls://': load_from_mmcls,
    r'(\S+\:)?s3://': load_from_ceph,
    r'(\S+\:)?petrel://': load_from_ceph,
    'pavi://': load_from_pavi,
}
_REFUSING: Dict[str, Loader] = {}


def refusing_loader(prefix: str) -> Loader:
    """A loader that refuses names of ``prefix`` (one per prefix, so reinstalling is a no-op)."""
    if prefix not in _REFUSING:
        def load_from_unsupported_scheme(filename: str, map_location: Any = None,
                                         *args: Any, **kwargs: Any) -> Any:
            raise UnsupportedCheckpointSourceError(
                filename, f'its prefix {prefix!r} has a checkpoint loader that hifuse-mm does '
                'not know, so it cannot promise that loading runs no code; download the file '
                'and pass the local path (it is then loaded weights-only)')
        load_from_unsupported_scheme.prefix = prefix  # type: ignore[attr-defined]
        _REFUSING[prefix] = load_from_unsupported_scheme
    return _REFUSING[prefix]


def is_safe_loader(loader: Any) -> bool:
    """Whether ``loader`` is one of ours."""
    return loader in SAFE_LOADERS.values() or loader in _REFUSING.values()


def safe_loader_for(prefix: str, loader: Optional[Loader] = None) -> Loader:
    """Our loader for ``prefix`` (whose loader now is ``loader``): one of
    :data:`SAFE_LOADERS`, ``loader`` itself if it is ours already, or a refusing one."""
    if loader is not None and is_safe_loader(loader):
        return loader
    return SAFE_LOADERS.get(prefix) or refusing_loader(prefix)
