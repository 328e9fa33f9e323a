"""Builds small session datasets and their Transform output for tests."""
import os

import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io

from components import features as F
from components import transform
from components.sessionize import feature_spec


def session(label, context=(), ratings=None, years=None, genres=(),
            history=(), user=b"u"):
  """One session example as TFT's instance dict (raw feature names)."""
  return {
      F.USER_ID: user,
      F.LABEL_ITEM_ID: label,
      F.CONTEXT_ITEM_ID: list(context),
      F.CONTEXT_RATING: list(ratings if ratings is not None else
                             [3.0] * len(context)),
      F.CONTEXT_YEAR: list(years if years is not None else [1990] * len(context)),
      F.CONTEXT_GENRE: list(genres),
      F.HISTORY_ITEM_ID: list(history),
      F.USER_GENDER: [], F.USER_AGE: [], F.USER_OCCUPATION: [],
      F.USER_ZIPCODE: [],
  }


def analyze_and_transform(train, others, config, temp_dir):
  """Runs preprocessing_fn with tft_beam: analyze `train`, transform all.

  Returns (transformed train, [transformed other datasets], TFTransformOutput).
  """
  metadata = dataset_metadata.DatasetMetadata.from_feature_spec(feature_spec())
  with tft_beam.Context(temp_dir=os.path.join(temp_dir, "tmp"),
                        force_tf_compat_v1=False):
    (transformed_train, _), transform_fn = (
        (train, metadata)
        | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: transform.preprocessing_fn(inputs, config)))
    transformed_others = []
    for i, data in enumerate(others):
      out, _ = ((data, metadata), transform_fn) | f"T{i}" >> tft_beam.TransformDataset()
      transformed_others.append(out)
    out_dir = os.path.join(temp_dir, "transform_output")
    _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
  # TFX's Transform also records the raw schema (the serving parse spec).
  metadata_io.write_metadata(
      metadata, os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
  return transformed_train, transformed_others, tft.TFTransformOutput(out_dir)
