"""Datasets and the cached proxy loader: one interface over every source.

Every source (``phantom``, ``chestxray14``, ``chestmnist``, ``kermany``; see :data:`SOURCES`)
gives the same :class:`Dataset`: uint8 grayscale images at the requested resolution (memory-mapped
from a cache built on first use), a named multi-label target matrix, patient ids, and
patient-wise ``train``/``val`` (and ``test``) splits. :func:`batches` serves normalised tensors.

    ds = load_dataset("kermany=/data/chest_xray", resolution=64)
    for x, y in batches(ds, "train", batch_size=64, shuffle=True, augment=True):
        ...

Importing this package does not import torch (only :func:`batches` does).
"""

from .cache import CACHE_FORMAT, decode_image, resolve_cache_dir
from .catalog import Catalog, DataSource, SourceScanner
from .chestxray14 import FINDINGS, load_bboxes
from .dataset import Dataset, load_dataset
from .errors import DataError
from .loader import MEAN, STD, augment_batch, batches, evaluation_index
from .phantom import phantom_lesion_masks
from .sources import SOURCES
from .spec import DataSpec, parse_data_spec

__all__ = [
    "CACHE_FORMAT",
    "Catalog",
    "DataError",
    "DataSource",
    "DataSpec",
    "Dataset",
    "FINDINGS",
    "MEAN",
    "SOURCES",
    "STD",
    "SourceScanner",
    "augment_batch",
    "batches",
    "decode_image",
    "evaluation_index",
    "load_bboxes",
    "load_dataset",
    "parse_data_spec",
    "phantom_lesion_masks",
    "resolve_cache_dir",
]
