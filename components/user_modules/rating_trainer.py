"""Trainer module of the ranking stage: `run_fn` trains the rating model.

It reads the same Transform output as the retrieval Trainer. From the train
split it derives what the model and its baselines need: the train mean
rating, each item's train mean rating (the per-item-mean baseline) and each
item's attributes (the candidate features the model looks up by id). Train
windows overlap; their own items hold each train rating once. Training stops at `ranking.epochs`, after `ranking.patience` epochs
without a lower eval-split RMSE, or when `ranking.max_minutes` is spent, and
keeps the best epoch. The Model artifact holds the SavedModel, its TFLite
conversion and training_summary.json, laid out as the retrieval model's.
"""
import dataclasses
import json
from typing import Any, Dict, List, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx

from components.lib import feature_config as fc
from components.lib import features as F
from components.lib import settings
from components.model.export import tflite
from components.model.export.rating import RatingExport
from components.model.rating_model import RatingModel, input_names
from components.user_modules import training

MONITOR = "val_rmse"


@dataclasses.dataclass(frozen=True)
class RatingTrainerSettings(settings.StepSettings):
  """What the rating model's Trainer reads of the run config: its own
  section, the seed and, for its input and output widths, the session
  length and the retrieval model's top K."""
  features: fc.FeatureConfig
  session: settings.SessionConfig
  ranking: settings.RatingModelConfig
  serving: settings.ServingModelConfig
  train: settings.SeedConfig


def own_ratings(arrays: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
  """(item ids, ratings) of every train rating once: the train windows' own
  items (F.OWN_ITEMS_FROM on, and the labels)."""
  context = arrays[F.CONTEXT_ITEM_ID]
  own = np.arange(context.shape[1])[np.newaxis] >= arrays[
      F.OWN_ITEMS_FROM].reshape(-1, 1)
  real = own & (context != F.PAD_ID)
  items = np.concatenate([context[real], arrays[F.LABEL_ITEM_ID].reshape(-1)])
  ratings = np.concatenate([arrays[F.CONTEXT_RATING_VALUE][real],
                            arrays[F.LABEL_RATING].reshape(-1)])
  return items.astype(np.int64), ratings


def rating_statistics(arrays: Dict[str, np.ndarray], num_items: int
                      ) -> Tuple[float, np.ndarray]:
  """(train mean rating, per-item mean rating [num_items]) over every train
  rating once (own_ratings); items without a train rating get the train
  mean."""
  items, ratings = own_ratings(arrays)
  real = items != F.PAD_ID
  items, ratings = items[real], ratings[real].astype(np.float64)
  if not len(ratings):
    raise ValueError("the train split has no ratings")
  mean = float(ratings.mean())
  sums = np.bincount(items, weights=ratings, minlength=num_items)
  counts = np.bincount(items, minlength=num_items)
  item_means = np.where(counts > 0, sums / np.maximum(counts, 1), mean)
  return mean, item_means.astype(np.float32)


def attribute_table(arrays: Dict[str, np.ndarray],
                    attributes: List[fc.Feature], num_items: int
                    ) -> np.ndarray:
  """[num_items, sum of lengths]: each train item's attribute ids, from the
  positions of the contexts and the labels (PAD for items never seen)."""
  table = np.zeros([num_items, sum(f.length for f in attributes)], np.int32)
  for items, prefix in ((arrays[F.CONTEXT_ITEM_ID], ""),
                        (arrays[F.LABEL_ITEM_ID][:, np.newaxis], F.LABEL_PREFIX)):
    items = items.astype(np.int64)
    columns = [arrays[(F.label_feature(f.name) if prefix else f.name)].reshape(
        items.shape[0], items.shape[1], f.length) for f in attributes]
    rows = np.concatenate(columns, axis=-1) if columns else np.zeros(
        items.shape + (0,), np.int32)
    real = items != F.PAD_ID
    table[items[real]] = rows[real]
  return table


def train_feature_names(config: fc.FeatureConfig) -> List[str]:
  """The transformed features run_fn reads: the model's inputs, the
  windows' own items, the label's rating and, for the attribute table, the
  item attributes of the contexts and labels."""
  return input_names(config) + [F.OWN_ITEMS_FROM, F.LABEL_RATING] + [
      n for f in config.item_attributes()
      for n in (f.name, F.label_feature(f.name))]


def model_inputs(arrays: Dict[str, np.ndarray], config: fc.FeatureConfig
                 ) -> Dict[str, np.ndarray]:
  """The model's inputs, with the windows' own items (training reads them)."""
  return {k: arrays[k] for k in input_names(config) + [F.OWN_ITEMS_FROM]}


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  step = RatingTrainerSettings.parse(fn_args.custom_config)
  ranking, config, seed = step.ranking, step.features, step.train.seed
  keras.utils.set_random_seed(seed)
  tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  attributes = config.item_attributes()
  names = train_feature_names(config)

  arrays = training.to_numpy(training.read_transformed(
      fn_args.train_files, fn_args.data_accessor, tft_output, names))
  sizes = training.vocabulary_sizes(tft_output, config)
  num_items = sizes[config.label.vocabulary]
  rating_mean, item_means = rating_statistics(arrays, num_items)
  table = attribute_table(arrays, attributes, num_items)
  # Canonical order keyed by every id and the ratings in half-stars.
  order_key = np.concatenate(
      [arrays[F.LABEL_ITEM_ID].reshape(-1, 1),
       np.round(arrays[F.CONTEXT_RATING_VALUE] * 2).astype(np.int64)], axis=1)
  train = training.in_memory_dataset(
      model_inputs(arrays, config), arrays[F.LABEL_RATING], order_key,
      ranking.batch_size, shuffle=True, seed=seed)
  eval_arrays = training.to_numpy(training.read_transformed(
      fn_args.eval_files, fn_args.data_accessor, tft_output, names))
  evaluation = tf.data.Dataset.from_tensor_slices(
      (model_inputs(eval_arrays, config), eval_arrays[F.LABEL_RATING])
  ).batch(256).cache()

  model = RatingModel(config, sizes, attributes, table, rating_mean, ranking)
  model.compile(optimizer=keras.optimizers.Adam(ranking.learning_rate))
  history, keep_best, seconds = training.fit(
      model, train, evaluation, ranking.epochs, ranking.patience,
      ranking.max_minutes, MONITOR, fn_args.model_run_dir,
      lower_is_better=True)
  ratings = len(own_ratings(arrays)[0])
  epochs = len(history["loss"])
  summary: Dict[str, Any] = {
      "seconds": seconds, "epochs": epochs,
      "best_epoch": keep_best.best_epoch + 1, f"best_{MONITOR}": keep_best.best,
      "train_ratings": ratings, "train_mean_rating": rating_mean,
      "train_ratings_per_second": ratings * epochs / seconds,
      "history": history,
  }
  logging.info("Rating model training summary: %s", json.dumps(summary))

  # Candidates per call: the retrieval model's top K (RecommenderExport's).
  candidates = min(step.serving.top_k, num_items - F.NUM_RESERVED_IDS)
  RatingExport(model, tft_output, config, step.session.max_context_length,
               item_means, rating_mean, candidates).save(
                   fn_args.serving_model_dir)
  training.write_model_files(fn_args.serving_model_dir, summary, step,
                             tflite.convert(fn_args.serving_model_dir))
