"""Pipeline configuration, DAG, runners and the `recsys` command line."""
import os

# See components/__init__.py: tf_keras must be selected before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
