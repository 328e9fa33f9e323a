"""Trainer module of the next-item ranker: `run_fn` trains it on
CandidateGen's lists.

The train split is the ranker's own (F.RANKER_TRAIN: each user's newest
train interactions, with the candidates of the retrieval model trained
without them); the eval split (the pushed retrieval model's candidates)
stops training early on its NDCG@10, which within the lists is the chain's
(a label outside the N candidates ranks N or lower: a miss at 10). Lists
whose label retrieval missed weigh zero.

The item tables come from the train data: popularity from Transform's
train counts, attributes (MovieLens genres and year, ...) from the
contexts and labels, and item-to-item transitions from each user's items
before their ranker labels (the history of their first ranker example), so
that no ranker label, eval or test target is in them.

The Model artifact holds the chain's SavedModel (Format-Serving: the
retrieval model, its base_model, followed by the ranker; what TFMA
evaluates), the ranker's on-device SavedModel and its TFLite conversion
(Format-TFLite/model.tflite, builtin ops, ranker.quantization), the
training summary and the settings.
"""
import dataclasses
import json
import os
from typing import Any, Dict, List, Sequence

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
from components.model.export import retrieval
from components.model.export import tflite
from components.model.export.ranker import ChainExport, RankerOnDeviceExport
from components.model.export.signature_names import RANK
from components.model.next_item_ranker import (CandidateFeatures,
                                               NextItemRanker,
                                               successor_table)
from components.user_modules import training
from components.user_modules.rating_trainer import attribute_table

MONITOR = "val_ndcg_at_10"
_READ_BATCH = 1024


@dataclasses.dataclass(frozen=True)
class RankerTrainerSettings(settings.StepSettings):
  """What the ranker's Trainer reads of the run config."""
  features: fc.FeatureConfig
  session: settings.SessionConfig
  ranker: settings.RankerModelConfig
  train: settings.SeedConfig


def label_positions(candidates: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """[b] the index of each label among its candidates [b, n]; -1 when it is
  not one of them (PAD and OOV labels never are)."""
  found = (candidates == labels[:, np.newaxis]) & (
      labels[:, np.newaxis] >= F.NUM_RESERVED_IDS)
  return np.where(found.any(axis=1), found.argmax(axis=1), -1)


def earliest_histories(user_ids: Sequence[bytes],
                       histories: Sequence[np.ndarray]) -> List[np.ndarray]:
  """Per user, the shortest of their examples' histories: for the ranker's
  train examples, the items before the user's first ranker label."""
  shortest: Dict[bytes, np.ndarray] = {}
  for user, history in zip(user_ids, histories):
    if user not in shortest or len(history) < len(shortest[user]):
      shortest[user] = history
  return [shortest[user] for user in sorted(shortest)]


def _input_names(config: fc.FeatureConfig) -> List[str]:
  return [F.CONTEXT_ITEM_ID] + [f.name for f in config.static_features()]


def read_lists(file_patterns: Sequence[str], tft_output: tft.TFTransformOutput,
               config: fc.FeatureConfig, candidates: int) -> Dict[str, Any]:
  """CandidateGen's examples -> {the model's inputs, F.LABEL_ITEM_ID, the
  item attributes of contexts and labels: arrays; F.USER_ID, and
  F.HISTORY_ITEM_ID: one array per example}, transformed by the Transform
  graph, in file order."""
  spec = dict(tft_output.raw_feature_spec())
  spec[F.CANDIDATE_ITEM_INDEX] = tf.io.FixedLenFeature([candidates], tf.int64)
  spec[F.CANDIDATE_SCORE] = tf.io.FixedLenFeature([candidates], tf.float32)
  attributes = [n for f in config.item_attributes()
                for n in (f.name, F.label_feature(f.name))]
  names = _input_names(config) + [F.LABEL_ITEM_ID] + attributes
  files = [f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)]
  if not files:
    raise ValueError(f"no candidate examples in {list(file_patterns)}")
  arrays: Dict[str, List] = {}
  dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(
      _READ_BATCH)
  for batch in dataset:
    raw = tf.io.parse_example(batch, spec)
    transformed = tft_output.transform_raw_features(
        {k: v for k, v in raw.items() if k in tft_output.raw_feature_spec()})
    values = {name: transformed[name].numpy() for name in names}
    values[F.CANDIDATE_ITEM_INDEX] = raw[F.CANDIDATE_ITEM_INDEX].numpy()
    values[F.CANDIDATE_SCORE] = raw[F.CANDIDATE_SCORE].numpy()
    history = tf.RaggedTensor.from_sparse(transformed[F.HISTORY_ITEM_ID])
    values[F.HISTORY_ITEM_ID] = [np.asarray(h) for h in history.to_list()]
    values[F.USER_ID] = list(raw[F.USER_ID].numpy())
    for name, value in values.items():
      arrays.setdefault(name, []).append(value)
  return {name: (np.concatenate(parts) if isinstance(parts[0], np.ndarray)
                 else [v for part in parts for v in part])
          for name, parts in arrays.items()}


def model_inputs(lists: Dict[str, Any], config: fc.FeatureConfig
                 ) -> Dict[str, np.ndarray]:
  return {name: lists[name] for name in _input_names(config) + [
      F.CANDIDATE_ITEM_INDEX, F.CANDIDATE_SCORE]}


def build_model(step: RankerTrainerSettings, tft_output: tft.TFTransformOutput,
                lists: Dict[str, Any]) -> NextItemRanker:
  """The ranker with its item tables from the train lists (see the module's
  docstring), normalized on their features."""
  config, ranker = step.features, step.ranker
  sizes = training.vocabulary_sizes(tft_output, config)
  num_items = sizes[config.label.vocabulary]
  successor_ids, probability = successor_table(
      earliest_histories(lists[F.USER_ID], lists[F.HISTORY_ITEM_ID]),
      num_items, ranker.successors, ranker.successor_window)
  features = CandidateFeatures(
      np.log1p(retrieval.read_item_counts(tft_output, config)),
      successor_ids, probability,
      attribute_table(lists, config.item_attributes(), num_items),
      ranker.recent_windows, name="candidate_features")
  model = NextItemRanker(config, sizes, features, ranker.hidden_units,
                         ranker.dropout)
  model.normalization.adapt(model.features(model_inputs(lists, config)))
  model.compile(optimizer=keras.optimizers.Adam(ranker.learning_rate))
  return model


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """Trains the ranker; `base_model` is the retrieval model it follows
  (the chain's first stage, exported with it)."""
  if not fn_args.base_model:
    raise ValueError("the ranker's Trainer needs the retrieval model it "
                     "ranks for as its base_model")
  step = RankerTrainerSettings.parse(fn_args.custom_config)
  config, ranker = step.features, step.ranker
  keras.utils.set_random_seed(step.train.seed)
  tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  train = read_lists(fn_args.train_files, tft_output, config,
                     ranker.candidates)
  evaluation = read_lists(fn_args.eval_files, tft_output, config,
                          ranker.candidates)
  positions = {name: label_positions(lists[F.CANDIDATE_ITEM_INDEX],
                                     lists[F.LABEL_ITEM_ID])
               for name, lists in (("train", train), ("eval", evaluation))}
  model = build_model(step, tft_output, train)
  inputs = model_inputs(train, config)
  # Canonical order keyed by the candidates and the label's position.
  order_key = np.concatenate([inputs[F.CANDIDATE_ITEM_INDEX],
                              inputs[F.CONTEXT_ITEM_ID],
                              positions["train"][:, np.newaxis]], axis=1)
  history, keep_best, seconds = training.fit(
      model,
      training.in_memory_dataset(inputs, positions["train"], order_key,
                                 ranker.batch_size, shuffle=True,
                                 seed=step.train.seed),
      tf.data.Dataset.from_tensor_slices(
          (model_inputs(evaluation, config), positions["eval"])).batch(256),
      ranker.epochs, ranker.patience, ranker.max_minutes, MONITOR,
      fn_args.model_run_dir)
  summary = {
      "seconds": seconds, "epochs": len(history["loss"]),
      "best_epoch": keep_best.best_epoch + 1,
      f"best_{MONITOR}": keep_best.best,
      "train_lists": len(positions["train"]),
      # Lists whose label retrieval missed: they weigh zero.
      "train_lists_with_label": int((positions["train"] >= 0).sum()),
      "eval_lists_with_label": int((positions["eval"] >= 0).sum()),
      "history": history,
      # The Pusher pushes the ranker beside this retrieval model only.
      layout.RETRIEVAL_MODEL_URI: os.path.dirname(fn_args.base_model.rstrip("/")),
  }
  logging.info("Ranker training summary: %s", json.dumps(summary))

  ChainExport(model, tf.saved_model.load(fn_args.base_model), tft_output,
              config, ranker.candidates).save(fn_args.serving_model_dir)
  ondevice = os.path.join(training.tflite_dir(fn_args.serving_model_dir),
                          layout.ONDEVICE_SAVED_MODEL)
  RankerOnDeviceExport(
      model, ranker.candidates, step.session.max_context_length,
      {f.name: f.length for f in config.static_features()}).save(ondevice)
  training.write_model_files(
      fn_args.serving_model_dir, summary, step,
      tflite.convert(ondevice, RANK, ranker.quantization))
