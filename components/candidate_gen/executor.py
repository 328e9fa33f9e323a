"""The executor of CandidateGen: retrieval's top N for each example a
next-item ranker trains or is evaluated on.

Each output example is the session example as Sessionize wrote it, with
the retrieval model's N best items (vocabulary indices, the history and
PAD/OOV left out as the protocol ranks; fewer when fewer are left, padded
with PAD) and their scores, and the rank of the label under the protocol
over the whole catalog (ties against it): what the chain's evaluation gives
a label the ranker never sees.

Leakage rule (PROTOCOL.md's splits, and the ranker's own): the ranker's
train examples (F.RANKER_TRAIN, each user's newest train interactions) get
their candidates from `holdout_model`, the retrieval model trained without
those labels (F.RANKER_LABELS_FROM); the eval and test examples get theirs
from `model`, the retrieval model that is pushed and that the ranker
follows on the phone. Neither model ever trained on an eval or test label.

TFMA evaluates one model's outputs and TFX's Trainer takes one model, so
this is a component of its own, reading the models' `evaluate` signature.
"""
import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Tuple

from absl import logging
import numpy as np
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.lib import features as F
from components.lib import layout
from components.model.catalog_ranking import EXCLUDED_SCORE
from components.model.export import signature_names as names

CANDIDATES_PER_EXAMPLE = "candidates_per_example"
# The splits written, and which input model proposes each one's candidates.
SPLIT_MODELS = {F.RANKER_TRAIN: "holdout_model", F.EVAL: "model",
                F.TEST: "model"}
_BATCH = 256


def top_candidates(scores: np.ndarray, labels: np.ndarray, count: int
                   ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Catalog scores [b, items] (excluded items at EXCLUDED_SCORE) and label
  indices [b] -> (the `count` best indices [b, count], their scores, the
  labels' protocol ranks [b]). Excluded items are no candidates: their
  slots hold PAD with EXCLUDED_SCORE."""
  count = min(count, scores.shape[1])
  # Best first; among equal scores the lower index, as top_k does.
  order = np.argsort(-scores, axis=1, kind="stable")[:, :count]
  top_scores = np.take_along_axis(scores, order, axis=1)
  excluded = top_scores <= EXCLUDED_SCORE
  indices = np.where(excluded, F.PAD_ID, order)
  target = scores[np.arange(len(labels)), labels]
  ranks = (scores >= target[:, np.newaxis]).sum(axis=1) - 1
  return indices, np.where(excluded, EXCLUDED_SCORE, top_scores), ranks


def with_candidates(serialized: bytes, indices: np.ndarray,
                    scores: np.ndarray, rank: int) -> bytes:
  """A session example with its candidates and its label's retrieval rank."""
  example = tf.train.Example.FromString(serialized)
  feature = example.features.feature
  feature[F.CANDIDATE_ITEM_INDEX].int64_list.value.extend(indices.tolist())
  feature[F.CANDIDATE_SCORE].float_list.value.extend(scores.tolist())
  feature[F.LABEL_RETRIEVAL_RANK].int64_list.value.append(int(rank))
  return example.SerializeToString()


def candidate_examples(batches: Iterable[tf.Tensor], model, count: int
                       ) -> Iterator[Tuple[bytes, int]]:
  """(example with candidates, label's retrieval rank) for each serialized
  session example of `batches`; `model` is a loaded retrieval SavedModel."""
  for batch in batches:
    labels = model.signatures["transform_features"](examples=batch)[
        F.LABEL_ITEM_ID].numpy().reshape(-1).astype(np.int64)
    scores = model.signatures["evaluate"](examples=batch)[
        names.SCORES].numpy()
    indices, top_scores, ranks = top_candidates(scores, labels, count)
    for i, serialized in enumerate(batch.numpy()):
      yield (with_candidates(serialized, indices[i], top_scores[i], ranks[i]),
             int(ranks[i]))


def _load(artifacts: List[types.Artifact]):
  return tf.saved_model.load(path_utils.serving_model_path(
      artifact_utils.get_single_uri(artifacts)))


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    count = int(exec_properties[CANDIDATES_PER_EXAMPLE])
    sessions = artifact_utils.get_single_instance(input_dict["examples"])
    output = artifact_utils.get_single_instance(output_dict["candidates"])
    output.split_names = artifact_utils.encode_split_names(list(SPLIT_MODELS))
    models = {key: _load(input_dict[key]) for key in set(SPLIT_MODELS.values())}
    report: Dict[str, Dict[str, Any]] = {}
    for split, key in SPLIT_MODELS.items():
      files = sorted(tf.io.gfile.glob(os.path.join(
          artifact_utils.get_split_uri([sessions], split), "*")))
      batches = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(
          _BATCH)
      directory = artifact_utils.get_split_uri([output], split)
      tf.io.gfile.makedirs(directory)
      path = os.path.join(directory, "candidates.gz")
      ranks = []
      with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for example, rank in candidate_examples(batches, models[key], count):
          writer.write(example)
          ranks.append(rank)
      ranks = np.array(ranks, np.int64)
      report[split] = {
          "examples": len(ranks),
          # How often the label is among the candidates: the ceiling of
          # what a ranker of them can reach (HR@count).
          "label_among_candidates": (float(np.mean(ranks < count))
                                     if len(ranks) else None)}
      output.set_int_custom_property(f"{split}_examples", len(ranks))
    report[CANDIDATES_PER_EXAMPLE] = count
    with tf.io.gfile.GFile(os.path.join(output.uri, layout.CANDIDATES_REPORT),
                           "w") as f:
      f.write(json.dumps(report, indent=2))
    logging.info("Candidates: %s", json.dumps(report))
