"""One entry point from a DataConfig to a scanned dataset."""
from __future__ import annotations

from tf_t2i.config import DataConfig
from tf_t2i.data.dataset_index import DatasetIndex
from tf_t2i.data.jsonl_dataset import load_jsonl
from tf_t2i.data.reed_dataset import load_reed
from tf_t2i.data.synthetic import load_synthetic


def load_dataset(config: DataConfig) -> DatasetIndex:
    """Scans (or, for "synthetic", draws) the dataset that `config` names.

    Raises:
        DataError: a one-sentence description of what is wrong with the data and what to do.
    """
    if config.format == "synthetic":
        return load_synthetic(image_size=config.image_size,
                              images_per_class=config.synthetic_images_per_class,
                              seed=config.seed)
    if config.format == "reed":
        return load_reed(config.path)
    if config.format == "jsonl":
        return load_jsonl(config.path)
    raise ValueError(f"unknown data format '{config.format}'.")
