"""Datasets: the `dataset_info.json` registry, reading files, converting rows to canonical examples, mixing.

Importing this package (and using everything but `load_hub_rows`) needs neither torch nor `datasets`, so the
studio can list and preview datasets cheaply. See `engine.data.converter` for the canonical example format.
"""

from engine.data.converter import RowsError, convert_rows, example_text, fill_placeholders
from engine.data.files import SUPPORTED_EXTENSIONS, read_rows
from engine.data.loader import MIX_STRATEGIES, load_examples, load_hub_rows, split_examples
from engine.data.registry import (
    FORMATTINGS,
    REGISTRY_FILE,
    DatasetAttr,
    dataset_kind,
    get_dataset_attrs,
    load_registry,
)

__all__ = [
    "FORMATTINGS",
    "MIX_STRATEGIES",
    "REGISTRY_FILE",
    "SUPPORTED_EXTENSIONS",
    "DatasetAttr",
    "RowsError",
    "convert_rows",
    "dataset_kind",
    "example_text",
    "fill_placeholders",
    "get_dataset_attrs",
    "load_examples",
    "load_hub_rows",
    "load_registry",
    "read_rows",
    "split_examples",
]
