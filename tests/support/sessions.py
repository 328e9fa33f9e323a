"""Builds small session datasets and their Transform output for tests."""
import os

import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata
from tensorflow_transform.tf_metadata import metadata_io

from components.lib import feature_config as fc
from components.lib import features as F
from components.lib import settings
from components.lib import slices
from components.sessionize.sessions import feature_spec
from components.user_modules import transform

GENRE_SLOTS = 2


def feature_config(item_dim=8, side_dim=4, users=True) -> fc.FeatureConfig:
  """The shipped feature-based layout, small: items, ratings, years, genres
  (GENRE_SLOTS per item) and optionally user gender/age."""
  groups = [{
      "name": "history", "type": "sequence", "features": [
          {"name": F.CONTEXT_ITEM_ID, "type": "STRING", "length": 1,
           "vocabulary": "item_id", "embedding_dim": item_dim},
          {"name": F.CONTEXT_RATING, "type": "FLOAT", "length": 1,
           "buckets": {"start": 0.25, "width": 0.5, "count": 10},
           "embedding_dim": side_dim},
          {"name": F.CONTEXT_YEAR, "type": "INT", "length": 1,
           "buckets": {"start": 1900, "width": 5, "count": 30},
           "embedding_dim": side_dim},
          {"name": F.CONTEXT_GENRE, "type": "STRING", "length": GENRE_SLOTS,
           "vocabulary": "genre", "embedding_dim": side_dim}]}]
  if users:
    groups.append({"name": "user", "type": "static", "features": [
        {"name": F.USER_GENDER, "type": "STRING", "length": 1,
         "vocabulary": "user_gender", "embedding_dim": side_dim},
        {"name": F.USER_AGE, "type": "INT", "length": 1,
         "buckets": {"start": 0, "width": 10, "count": 10},
         "embedding_dim": side_dim}]})
  config = fc.parse({"groups": groups, "label": {
      "name": F.LABEL_ITEM_ID, "type": "STRING", "length": 1,
      "vocabulary": "item_id", "embedding_dim": item_dim}})
  fc.validate(config, GENRE_SLOTS)
  return config


def session(label, context=(), ratings=None, years=None, genres=None,
            history=(), user=b"u", gender=b"F", age=25, label_rating=4.0,
            label_year=1990, label_genres=(b"Drama",), own_from=0,
            ranker_from=None):
  """One session example as TFT's instance dict (raw feature names).

  `genres` is one list per context item, padded to GENRE_SLOTS slots;
  `own_from` is where a train window's own items start (F.OWN_ITEMS_FROM),
  `ranker_from` where its ranker labels do (F.RANKER_LABELS_FROM; default:
  none).
  """
  genres = genres if genres is not None else [[b"Drama"]] * len(context)
  return {
      F.USER_ID: user,
      F.LABEL_ITEM_ID: label,
      F.CONTEXT_ITEM_ID: list(context),
      F.CONTEXT_RATING: list(ratings if ratings is not None else
                             [3.0] * len(context)),
      F.CONTEXT_YEAR: list(years if years is not None else [1990] * len(context)),
      F.CONTEXT_GENRE: [g for item in genres
                        for g in (list(item) + [b""] * GENRE_SLOTS)[:GENRE_SLOTS]],
      F.HISTORY_ITEM_ID: list(history),
      F.OWN_ITEMS_FROM: own_from,
      F.RANKER_LABELS_FROM: (len(context) + 1 if ranker_from is None
                             else ranker_from),
      F.LABEL_RATING: [label_rating],
      F.label_feature(F.CONTEXT_YEAR): [label_year],
      F.label_feature(F.CONTEXT_GENRE): (
          list(label_genres) + [b""] * GENRE_SLOTS)[:GENRE_SLOTS],
      F.USER_GENDER: [gender] if gender else [],
      F.USER_AGE: [age] if age else [],
      F.USER_OCCUPATION: [], F.USER_ZIPCODE: [],
      # Eval and test examples carry slice features; Transform ignores them.
      **{name: [] for name in slices.FEATURES},
  }


def custom_config(config: fc.FeatureConfig, context_length: int,
                  **vocabulary) -> dict:
  """Transform's custom_config: the feature config, the context length and
  `vocabulary` caps (VocabularyConfig's settings)."""
  return transform.TransformSettings(
      features=config,
      session=settings.SessionConfig(max_context_length=context_length),
      model=settings.VocabularyConfig(**vocabulary)).to_dict()


def analyze_and_transform(train, others, custom, temp_dir):
  """Runs preprocessing_fn with tft_beam: analyze `train`, transform all.

  Returns (transformed train, [transformed other datasets], TFTransformOutput).
  """
  metadata = dataset_metadata.DatasetMetadata.from_feature_spec(feature_spec())
  with tft_beam.Context(temp_dir=os.path.join(temp_dir, "tmp"),
                        force_tf_compat_v1=False):
    (transformed_train, _), transform_fn = (
        (train, metadata)
        | tft_beam.AnalyzeAndTransformDataset(
            lambda inputs: transform.preprocessing_fn(inputs, custom)))
    transformed_others = []
    for i, data in enumerate(others):
      out, _ = (((data, metadata), transform_fn)
                | f"T{i}" >> tft_beam.TransformDataset())
      transformed_others.append(out)
    out_dir = os.path.join(temp_dir, "transform_output")
    _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
  # TFX's Transform also records the raw schema (the serving parse spec).
  metadata_io.write_metadata(
      metadata, os.path.join(out_dir, tft.TFTransformOutput.RAW_METADATA_DIR))
  return transformed_train, transformed_others, tft.TFTransformOutput(out_dir)
