"""The headless fine-tuning engine: configs, data, templates, models, training stages.

Importing this package is cheap: heavy libraries (torch, transformers, peft, trl, datasets)
are imported inside the functions that need them.
"""

__version__ = "0.1.0"
