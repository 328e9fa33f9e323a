"""Trainer module: `run_fn` trains the dual encoder and exports it.

Hyperparameters and the feature config come from the run's config (Trainer
custom_config), so run_config.json describes the model exactly. Training
stops at `train.epochs`, when the eval split's NDCG@10 (history excluded) has
not improved for `train.patience` epochs, or when `train.max_minutes` is
spent, and keeps the best epoch's weights. The Model artifact holds the
SavedModel (Format-Serving, evaluated by TFMA), its TFLite conversion
(Format-TFLite/model.tflite, pushed to devices) and training_summary.json;
TensorBoard logs go to the model run directory: the epoch losses and metrics of
both splits, and the train loss every TENSORBOARD_EVERY batches.
"""
import json
import os
import time
from typing import Any, Dict, List, Sequence, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from components import feature_config as fc
from components import features as F
from components import serving
from components import tflite
from components.model.dual_encoder import DualEncoder

TFLITE_DIR = "Format-TFLite"
TFLITE_FILE = "model.tflite"
SUMMARY_FILE = "training_summary.json"
MONITOR = "val_ndcg_at_10"
TENSORBOARD_EVERY = 20  # batches between train-loss summaries
# Examples read per parse call.
_READ_BATCH = 1024


def read_transformed(file_pattern, data_accessor,
                     tft_output: tft.TFTransformOutput, names: Sequence[str]
                     ) -> tf.data.Dataset:
  """Batches {name: transformed feature} of the examples, in file order."""
  dataset = data_accessor.tf_dataset_factory(
      file_pattern,
      tfxio.TensorFlowDatasetOptions(batch_size=_READ_BATCH, num_epochs=1,
                                     shuffle=False),
      tft_output.transformed_metadata.schema)
  return dataset.map(lambda batch: {k: batch[k] for k in names},
                     num_parallel_calls=tf.data.AUTOTUNE)


def to_numpy(dataset: tf.data.Dataset) -> Dict[str, np.ndarray]:
  """A dataset of {name: batch} as whole arrays."""
  arrays: Dict[str, List[np.ndarray]] = {}
  for batch in dataset.as_numpy_iterator():
    for name, values in batch.items():
      arrays.setdefault(name, []).append(values)
  if not arrays:
    raise ValueError("the train split has no examples")
  return {k: np.concatenate(v) for k, v in arrays.items()}


def in_memory_dataset(features: Dict[str, np.ndarray], labels: np.ndarray,
                      order_key: np.ndarray, batch_size: int,
                      shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
  """(features, labels) batches from arrays held in memory.

  The examples are put in their canonical order first (see
  `canonical_order`, keyed by `order_key`, integer ids per example), so
  that the seeded shuffle, and with it the trained model, does not depend on
  the order in which Beam wrote the examples (runner, workers, bundles).
  """
  order = canonical_order(features, order_key)
  features = {k: tf.constant(v[order]) for k, v in features.items()}
  labels = tf.constant(labels[order])
  indices = tf.data.Dataset.range(len(order))
  if shuffle:
    indices = indices.shuffle(len(order), seed=seed,
                              reshuffle_each_iteration=True)
  return indices.batch(batch_size).map(
      lambda i: ({k: tf.gather(v, i) for k, v in features.items()},
                 tf.gather(labels, i)),
      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_dataset(file_pattern, data_accessor, tft_output: tft.TFTransformOutput,
                 config: fc.FeatureConfig, batch_size: int,
                 with_history: bool = False, shuffle: bool = False,
                 seed: int = 0) -> tf.data.Dataset:
  """(model features, label) batches, parsed once and held in memory.

  With `with_history` the features include the dense history (PAD-padded),
  which validation excludes from the ranking. With `shuffle` the batches are
  shuffled with `seed` (in_memory_dataset).
  """
  names = serving.model_feature_names(config)
  if with_history:  # histories differ in length: keep the read batches
    dataset = read_transformed(file_pattern, data_accessor, tft_output,
                               names + [F.HISTORY_ITEM_ID, F.LABEL_ITEM_ID])

    def split(batch):
      features = {k: batch[k] for k in names}
      features[F.HISTORY_ITEM_ID] = tf.sparse.to_dense(batch[F.HISTORY_ITEM_ID])
      return features, batch[F.LABEL_ITEM_ID]
    return dataset.map(split).unbatch().padded_batch(batch_size).cache(
    ).prefetch(tf.data.AUTOTUNE)
  arrays = to_numpy(read_transformed(file_pattern, data_accessor, tft_output,
                                     names + [F.LABEL_ITEM_ID]))
  labels = arrays.pop(F.LABEL_ITEM_ID)
  return in_memory_dataset(arrays, labels, labels, batch_size, shuffle, seed)


def canonical_order(features: Dict[str, np.ndarray],
                    labels: np.ndarray) -> np.ndarray:
  """A permutation of the examples that depends on their contents only.

  Examples are ordered by a hash of all their ids (so the order is well
  mixed, not sorted by item), ties broken by the ids themselves: the same
  examples in any order give the same sequence, and identical examples are
  interchangeable.
  """
  count = len(labels)
  columns = np.concatenate(
      [labels.reshape(count, -1).astype(np.int64)] +
      [features[k].reshape(count, -1).astype(np.int64)
       for k in sorted(features)], axis=1)
  multipliers = np.random.default_rng(0).integers(
      1, 2**62, size=columns.shape[1], dtype=np.int64) | 1
  with np.errstate(over="ignore"):
    hashed = (columns * multipliers).sum(axis=1)  # wraps around: a hash
  return np.lexsort(tuple(columns.T[::-1]) + (hashed,))


def vocabulary_sizes(tft_output: tft.TFTransformOutput,
                     config: fc.FeatureConfig) -> Dict[str, int]:
  return {name: tft_output.vocabulary_size_by_name(name) + F.NUM_RESERVED_IDS
          for name in config.vocabularies()}


def build_model(custom_config: Dict[str, Any],
                tft_output: tft.TFTransformOutput) -> DualEncoder:
  config = fc.parse(custom_config["features"])
  model_config, train_config = custom_config["model"], custom_config["train"]
  item_counts = None
  if train_config["loss"] == "sampled_softmax":
    item_counts = serving.read_item_counts(tft_output, config)
  model = DualEncoder(
      config, vocabulary_sizes(tft_output, config),
      custom_config["session"]["max_context_length"], model_config,
      item_counts=item_counts, loss=train_config["loss"],
      num_negatives=train_config["num_negatives"])
  model.compile(optimizer=keras.optimizers.Adam(train_config["learning_rate"]))
  return model


class TimeBudget(keras.callbacks.Callback):
  """Stops training after the epoch that used up `minutes`."""

  def __init__(self, minutes: float):
    super().__init__()
    self.seconds = minutes * 60.0
    self.started = 0.0

  def on_train_begin(self, logs=None):
    self.started = time.monotonic()

  def on_epoch_end(self, epoch, logs=None):
    if time.monotonic() - self.started >= self.seconds:
      logging.info("Time budget of %.0f s used after epoch %d.", self.seconds,
                   epoch + 1)
      self.model.stop_training = True


class KeepBest(keras.callbacks.Callback):
  """Remembers the weights of the best epoch by `monitor` (higher is better,
  or lower with `lower_is_better`); restores them at the end however
  training stopped (epochs, patience or time)."""

  def __init__(self, monitor: str, patience: int,
               lower_is_better: bool = False):
    super().__init__()
    self.monitor, self.patience = monitor, patience
    self.sign = -1.0 if lower_is_better else 1.0
    self.best, self.best_epoch, self.best_weights = None, -1, None

  def on_epoch_end(self, epoch, logs=None):
    value = (logs or {}).get(self.monitor)
    if value is None:
      return
    if self.best is None or self.sign * value > self.sign * self.best:
      self.best, self.best_epoch = value, epoch
      self.best_weights = self.model.get_weights()
    elif epoch - self.best_epoch >= self.patience:
      self.model.stop_training = True

  def on_train_end(self, logs=None):
    if self.best_weights is not None:
      self.model.set_weights(self.best_weights)


def count_targets(dataset: tf.data.Dataset) -> int:
  """Predictions per epoch: the real items of every context (see
  next_item_targets: each real position has exactly one target)."""
  return int(dataset.reduce(tf.constant(0, tf.int64), lambda total, batch: (
      total + tf.reduce_sum(tf.cast(
          batch[0][F.CONTEXT_ITEM_ID] != F.PAD_ID, tf.int64)))).numpy())


def fit(model: keras.Model, train: tf.data.Dataset,
        evaluation: tf.data.Dataset, epochs: int, patience: int,
        max_minutes: float, monitor: str, log_dir: str,
        lower_is_better: bool = False) -> Tuple[Dict[str, Any], KeepBest, float]:
  """Fits with early stopping on `monitor`, the time budget and TensorBoard
  logs; returns (history, the KeepBest callback, seconds)."""
  keep_best = KeepBest(monitor, patience, lower_is_better)
  started = time.monotonic()
  history = model.fit(
      train, validation_data=evaluation, epochs=epochs, verbose=2,
      callbacks=[
          keep_best, TimeBudget(max_minutes),
          # Batch summaries are written from the batch hooks, which Keras
          # calls only with write_steps_per_second.
          keras.callbacks.TensorBoard(log_dir=log_dir,
                                      update_freq=TENSORBOARD_EVERY,
                                      write_steps_per_second=True)])
  return history.history, keep_best, time.monotonic() - started


def write_model_files(serving_model_dir: str, summary: Dict[str, Any]) -> None:
  """Beside the saved SavedModel: its TFLite conversion and the summary."""
  model_dir = os.path.dirname(serving_model_dir)
  tf.io.gfile.makedirs(os.path.join(model_dir, TFLITE_DIR))
  with tf.io.gfile.GFile(os.path.join(model_dir, TFLITE_DIR, TFLITE_FILE),
                         "wb") as f:
    f.write(tflite.convert(serving_model_dir))
  with tf.io.gfile.GFile(os.path.join(model_dir, SUMMARY_FILE), "w") as f:
    f.write(json.dumps(summary, indent=2))


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  custom_config = fn_args.custom_config
  train_config = custom_config["train"]
  keras.utils.set_random_seed(train_config["seed"])
  tft_output = tft.TFTransformOutput(fn_args.transform_output)
  config = fc.parse(custom_config["features"])

  train = make_dataset(fn_args.train_files, fn_args.data_accessor, tft_output,
                       config, train_config["batch_size"], shuffle=True,
                       seed=train_config["seed"])
  evaluation = make_dataset(fn_args.eval_files, fn_args.data_accessor,
                            tft_output, config, 256, with_history=True)
  model = build_model(custom_config, tft_output)
  history, keep_best, seconds = fit(
      model, train, evaluation, train_config["epochs"],
      train_config["patience"], train_config["max_minutes"], MONITOR,
      fn_args.model_run_dir)
  epochs = len(history["loss"])
  targets = count_targets(train) * epochs
  summary = {
      "seconds": seconds, "epochs": epochs, "best_epoch": keep_best.best_epoch + 1,
      f"best_{MONITOR}": keep_best.best, "train_predictions": targets,
      "train_predictions_per_second": targets / seconds,
      "history": history,
  }
  logging.info("Training summary: %s", json.dumps(summary))

  export = serving.RecommenderExport(
      model, tft_output, config,
      context_length=custom_config["session"]["max_context_length"],
      top_k=custom_config["serving"]["top_k"])
  serving.save(export, fn_args.serving_model_dir)
  write_model_files(fn_args.serving_model_dir, summary)
