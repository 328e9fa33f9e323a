"""TFX components and module code (Transform, Trainer) of the recommender pipeline.

TensorFlow 2.16 defaults `tf.keras` to Keras 3, which TFX 1.16, TFT and TFMA do
not support; the legacy Keras 2 (tf_keras) must be selected before TensorFlow is
first imported, so every entry point into this package sets it here.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def __getattr__(name):
  """`components.ItemCatalog` (and the other artifact types), the import path
  their type names give (loaded on first use: TFX is slow to import)."""
  if name in ("ItemCatalog", "TwoStageEvaluation"):
    from components import artifacts  # pylint: disable=import-outside-toplevel
    return getattr(artifacts, name)
  raise AttributeError(f"module 'components' has no attribute {name!r}")
