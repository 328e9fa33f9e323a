"""The executor of TwoStageEvaluator: retrieval alone vs retrieval re-ordered
by rating.

The two-stage recommender takes the retrieval model's top N (the whole
catalog scored, the user's history excluded, as ../shared/PROTOCOL.md ranks)
and orders those N by the rating model's predicted rating. Its ranks follow
the protocol: a target among the N ranks after the other candidates rated at
least as high (ties against it); a target outside them keeps its retrieval
rank, which is N or more (a miss for every k <= N). HR@k and NDCG@10 of
retrieval alone and of every N are averaged over all test users.

TFMA evaluates one model's outputs; this needs two models chained, so it is
a small component of its own, reading the models' SavedModel signatures
(retrieval `evaluate` and `transform_features`, rating `rate_candidates`).
"""
import json
import os
from typing import Any, Dict, List, Sequence

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
from components.user_modules.evaluation import rank_metrics

CANDIDATES = "candidates"
RETRIEVAL = "retrieval"
TWO_STAGE = "two_stage"
_BATCH = 256


def retrieval_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """[b] protocol ranks: other items scored at least as high as the target."""
  target = scores[np.arange(len(labels)), labels]
  return (scores >= target[:, np.newaxis]).sum(axis=1) - 1


def reordered_ranks(ranks: np.ndarray, top_ids: np.ndarray,
                    top_scores: np.ndarray, ratings: np.ndarray,
                    labels: np.ndarray, n: int) -> np.ndarray:
  """[b] ranks once the retrieval top n (ids, scores [b, >= n]) is ordered
  by rating; `ranks` are the retrieval ranks. Excluded items (the history,
  PAD, OOV) among the top n are no candidates."""
  valid = top_scores[:, :n] > EXCLUDED_SCORE
  rated = np.where(valid, ratings[:, :n], -np.inf)
  is_target = valid & (top_ids[:, :n] == labels[:, np.newaxis])
  found = is_target.any(axis=1)
  target_rating = np.where(is_target, rated, 0.0).sum(axis=1)
  within = (valid & (rated >= target_rating[:, np.newaxis])).sum(axis=1) - 1
  return np.where(found, within, np.maximum(ranks, n))


def evaluate(examples: tf.data.Dataset, retrieval, rating,
             candidates: Sequence[int]) -> Dict[str, Any]:
  """Batches of serialized test examples -> {users, retrieval: metrics,
  two_stage: {N: metrics}}; `retrieval` and `rating` are loaded SavedModels."""
  most = max(candidates)
  ranks: List[np.ndarray] = []
  reordered: Dict[int, List[np.ndarray]] = {n: [] for n in candidates}
  for batch in examples:
    labels = retrieval.signatures["transform_features"](examples=batch)[
        F.LABEL_ITEM_ID].numpy().reshape(-1).astype(np.int64)
    scores = retrieval.signatures["evaluate"](examples=batch)[names.SCORES]
    top = tf.math.top_k(scores, k=min(most, int(scores.shape[1])))
    ratings = rating.signatures["rate_candidates"](
        examples=batch, candidates=tf.cast(top.indices, tf.int64))[
            names.RATINGS].numpy()
    batch_ranks = retrieval_ranks(scores.numpy(), labels)
    ranks.append(batch_ranks)
    for n in candidates:
      reordered[n].append(reordered_ranks(
          batch_ranks, top.indices.numpy(), top.values.numpy(), ratings,
          labels, n))
  if not ranks:
    raise ValueError("the test split has no examples")
  return {
      "users": int(sum(len(r) for r in ranks)),
      RETRIEVAL: rank_metrics(np.concatenate(ranks)),
      TWO_STAGE: {str(n): rank_metrics(np.concatenate(reordered[n]))
                  for n in candidates},
  }


def read_metrics(uri: str) -> Dict[str, Any]:
  with tf.io.gfile.GFile(os.path.join(uri, layout.TWO_STAGE_METRICS)) as f:
    return json.load(f)


class Executor(base_executor.BaseExecutor):

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    candidates = [int(n) for n in json.loads(exec_properties[CANDIDATES])]
    sessions = artifact_utils.get_single_instance(input_dict["examples"])
    pattern = os.path.join(
        artifact_utils.get_split_uri([sessions], F.TEST), "*")
    files = sorted(tf.io.gfile.glob(pattern))
    examples = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(
        _BATCH)
    retrieval = tf.saved_model.load(path_utils.serving_model_path(
        artifact_utils.get_single_uri(input_dict["model"])))
    rating = tf.saved_model.load(path_utils.serving_model_path(
        artifact_utils.get_single_uri(input_dict["rating_model"])))
    metrics = evaluate(examples, retrieval, rating, candidates)
    output = artifact_utils.get_single_instance(output_dict["evaluation"])
    with tf.io.gfile.GFile(os.path.join(output.uri, layout.TWO_STAGE_METRICS), "w") as f:
      f.write(json.dumps(metrics, indent=2))
    output.set_int_custom_property("users", metrics["users"])
    logging.info("Two-stage evaluation: %s", json.dumps(metrics))
