"""Trainer module of retrieval: `run_fn` trains the dual encoder and exports
it.

Hyperparameters and the feature config come from the run's config (Trainer
custom_config, `TrainerSettings`), with the Tuner's best hyperparameters in
place when the pipeline tunes (hyperparameters.py), and the Model artifact
records exactly what made it. Training stops at `train.epochs`, when the eval split's
NDCG@10 (history excluded) has not improved for `train.patience` epochs, or
when `train.max_minutes` is spent, and keeps the best epoch's weights. Given
a base model (data in spans: the latest blessed model of earlier spans), it
starts from its weights (warm_start.py) and trains at most
`train.warm_start_epochs`. The
Model artifact holds the SavedModel (Format-Serving, evaluated by TFMA), its
TFLite conversion (pushed to devices), the training summary and the
settings (training.py); TensorBoard logs go to the model run directory: the
epoch losses and metrics of both splits, and the train loss every
training.TENSORBOARD_EVERY batches.
"""
import dataclasses
import json
import os
from typing import Dict, Iterator, Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx

from components.lib import feature_config as fc
from components.lib import features as F
from components.lib import layout
from components.lib import settings
from components.model.causal_model import before_ranker_labels, own_positions
from components.model.dual_encoder import DualEncoder
from components.model.export import retrieval
from components.model.export import tflite
from components.user_modules import hyperparameters
from components.user_modules import training
from components.user_modules import warm_start

MONITOR = "val_ndcg_at_10"
# custom_config key: true for the retrieval model that proposes the ranker's
# train candidates (trained without the ranker's labels).
HOLD_OUT_RANKER_LABELS = "hold_out_ranker_labels"
# Train examples that calibrate int8 quantization (serving.quantization).
REPRESENTATIVE_EXAMPLES = 300


@dataclasses.dataclass(frozen=True)
class TrainerSettings(settings.StepSettings):
  """What the retrieval Trainer reads of the run config."""
  features: fc.FeatureConfig
  session: settings.SessionConfig
  model: settings.ModelConfig
  train: settings.TrainConfig
  serving: settings.ServingModelConfig


def make_dataset(file_pattern, data_accessor, tft_output: tft.TFTransformOutput,
                 config: fc.FeatureConfig, batch_size: int,
                 with_history: bool = False, shuffle: bool = False,
                 seed: int = 0, hold_out_ranker_labels: bool = False
                 ) -> tf.data.Dataset:
  """(model features, label) batches, parsed once and held in memory.

  With `with_history` the features include the dense history (PAD-padded),
  which validation excludes from the ranking. With `shuffle` the batches are
  shuffled with `seed` (in_memory_dataset). With `hold_out_ranker_labels`
  they include where the ranker's labels start (F.RANKER_LABELS_FROM).
  """
  names = config.input_names()
  if with_history:  # histories differ in length: keep the read batches
    dataset = training.read_transformed(
        file_pattern, data_accessor, tft_output,
        names + [F.HISTORY_ITEM_ID, F.LABEL_ITEM_ID])

    def split(batch):
      features = {k: batch[k] for k in names}
      features[F.HISTORY_ITEM_ID] = tf.sparse.to_dense(batch[F.HISTORY_ITEM_ID])
      return features, batch[F.LABEL_ITEM_ID]
    return dataset.map(split).unbatch().padded_batch(batch_size).cache(
    ).prefetch(tf.data.AUTOTUNE)
  arrays = training.to_numpy(training.read_transformed(
      file_pattern, data_accessor, tft_output,
      names + [F.LABEL_ITEM_ID, F.OWN_ITEMS_FROM] +
      ([F.RANKER_LABELS_FROM] if hold_out_ranker_labels else [])))
  labels = arrays.pop(F.LABEL_ITEM_ID)
  return training.in_memory_dataset(arrays, labels, labels, batch_size,
                                    shuffle, seed)


def build_model(step: TrainerSettings, tft_output: tft.TFTransformOutput,
                hold_out_ranker_labels: bool = False) -> DualEncoder:
  config, train = step.features, step.train
  item_counts = None
  if train.loss == "sampled_softmax":
    item_counts = retrieval.read_item_counts(tft_output, config)
  model = DualEncoder(
      config, training.vocabulary_sizes(tft_output, config),
      step.session.max_context_length, step.model, item_counts=item_counts,
      loss=train.loss, num_negatives=train.num_negatives,
      exclude_seen=train.exclude_seen,
      hold_out_ranker_labels=hold_out_ranker_labels)
  model.compile(optimizer=keras.optimizers.Adam(train.learning_rate))
  return model


def fit(step: TrainerSettings, model: DualEncoder, train: tf.data.Dataset,
        evaluation: tf.data.Dataset, max_minutes: float, log_dir: str,
        epochs: Optional[int] = None):
  """training.fit with the train settings (the Trainer's and each Tuner
  trial's): early stopping on the eval NDCG@10, the decaying learning
  rate; at most `epochs` (default train.epochs)."""
  t = step.train
  return training.fit(
      model, train, evaluation, epochs or t.epochs, t.patience, max_minutes,
      MONITOR,
      log_dir, schedule=[training.decaying(t.learning_rate,
                                           t.learning_rate_decay)])


def count_targets(dataset: tf.data.Dataset,
                  hold_out_ranker_labels: bool = False) -> int:
  """Predictions per epoch: the real context positions whose next item is
  one of the window's own (see next_item_targets: each real position has
  exactly one next item), and not a held-out ranker label."""
  def targets(batch):
    features = batch[0]
    items = features[F.CONTEXT_ITEM_ID]
    trained = tf.logical_and(items != F.PAD_ID,
                             own_positions(features, items, offset=1))
    if hold_out_ranker_labels:
      trained = tf.logical_and(
          trained, before_ranker_labels(features, items, offset=1))
    return tf.reduce_sum(tf.cast(trained, tf.int64))
  return int(dataset.reduce(tf.constant(0, tf.int64),
                            lambda total, batch: total + targets(batch)
                            ).numpy())


def datasets(step: TrainerSettings, fn_args: tfx.components.FnArgs,
             hold_out_ranker_labels: bool = False):
  """(Transform output, train batches, eval batches) of a Trainer's or a
  Tuner's inputs, with the random seed set."""
  keras.utils.set_random_seed(step.train.seed)
  tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  train = make_dataset(fn_args.train_files, fn_args.data_accessor, tft_output,
                       step.features, step.train.batch_size, shuffle=True,
                       seed=step.train.seed,
                       hold_out_ranker_labels=hold_out_ranker_labels)
  evaluation = make_dataset(fn_args.eval_files, fn_args.data_accessor,
                            tft_output, step.features, 256, with_history=True)
  return tft_output, train, evaluation


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  step = TrainerSettings.parse(fn_args.custom_config)
  if fn_args.hyperparameters:  # the Tuner's best
    step = hyperparameters.apply(step, fn_args.hyperparameters["values"])
  hold_out = bool(fn_args.custom_config.get(HOLD_OUT_RANKER_LABELS))
  tft_output, train, evaluation = datasets(step, fn_args, hold_out)
  model = build_model(step, tft_output, hold_out)
  vocabularies = {name: tft_output.vocabulary_by_name(name)
                  for name in step.features.vocabularies()}
  started_from, epochs = None, step.train.epochs
  if fn_args.base_model and step.train.warm_start:
    features, _ = next(iter(train))
    model.encode_positions(features)  # creates every weight
    model(features)
    started_from = warm_start.warm_start(
        model, os.path.dirname(fn_args.base_model), vocabularies)
    logging.info("Warm start: %s", json.dumps(started_from))
    if "skipped" not in started_from:
      epochs = min(epochs, step.train.warm_start_epochs)
  history, keep_best, seconds = fit(step, model, train, evaluation,
                                    step.train.max_minutes,
                                    fn_args.model_run_dir, epochs)
  epochs = len(history["loss"])
  targets = count_targets(train, hold_out) * epochs
  summary = {
      "seconds": seconds, "epochs": epochs,
      "best_epoch": keep_best.best_epoch + 1,
      f"best_{MONITOR}": keep_best.best, "train_predictions": targets,
      "train_predictions_per_second": targets / seconds,
      "history": history,
  }
  if started_from is not None:
    summary["warm_start"] = started_from
  if layout.TRAINED_THROUGH_SPAN in fn_args.custom_config:
    summary[layout.TRAINED_THROUGH_SPAN] = fn_args.custom_config[
        layout.TRAINED_THROUGH_SPAN]
  logging.info("Training summary: %s", json.dumps(summary))

  export = retrieval.RecommenderExport(
      model, tft_output, step.features,
      context_length=step.session.max_context_length,
      top_k=step.serving.top_k)
  export.save(fn_args.serving_model_dir)
  tflite_dir = training.tflite_dir(fn_args.serving_model_dir)
  mapping = export.input_mapping()
  export.ondevice.save(os.path.join(tflite_dir, layout.ONDEVICE_SAVED_MODEL))
  tflite.save_representative(
      representative_inputs(train, list(mapping.inputs)),
      os.path.join(tflite_dir, layout.REPRESENTATIVE_INPUTS))
  training.write_model_files(
      fn_args.serving_model_dir, summary, step,
      tflite.convert_ondevice(tflite_dir, step.serving.quantization), mapping)
  warm_start.save(os.path.dirname(fn_args.serving_model_dir), model,
                  vocabularies)


def representative_inputs(dataset: tf.data.Dataset, names: Sequence[str],
                          count: int = REPRESENTATIVE_EXAMPLES
                          ) -> Iterator[Dict[str, np.ndarray]]:
  """The first `count` train examples as `ondevice` inputs, one at a time:
  what int8 quantization calibrates its activation ranges on."""
  for features, _ in dataset.unbatch().take(count):
    yield {name: features[name].numpy()[np.newaxis].astype(np.int32)
           for name in names}
