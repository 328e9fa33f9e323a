"""TFX components and module code (Transform, Trainer) of the recommender pipeline.

TensorFlow 2.16 defaults `tf.keras` to Keras 3, which TFX 1.16, TFT and TFMA do
not support; the legacy Keras 2 (tf_keras) must be selected before TensorFlow is
first imported, so every entry point into this package sets it here.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def __getattr__(name):
  """`components.ItemCatalog`, the import path its artifact type name gives
  (loaded on first use: TFX is slow to import)."""
  if name == "ItemCatalog":
    from components.artifacts import ItemCatalog  # pylint: disable=import-outside-toplevel
    return ItemCatalog
  raise AttributeError(f"module 'components' has no attribute {name!r}")
