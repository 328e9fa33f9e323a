"""The Pusher's first step: model.tflite evaluated as the file that ships.

TFMA evaluates the SavedModel; the phone runs the converted file, whose
quantization (serving.quantization) and conversion may change rankings. Here
every test example goes through the file the way an app calls it: the
session example's context, position and user features are mapped with the
bundle's input_mapping.json (TFLiteRecommender), the interpreter is invoked
at a batch of one, and the target is ranked under ../shared/PROTOCOL.md
among the file's scores of the whole catalog (its `scores` output), the
user's whole history excluded and ties against the target, exactly as the
TFMA metrics rank the SavedModel's `evaluate` output. HR@1/5/10/50 and
NDCG@10 overall and on every slice of the examples (components/lib/slices.py).

With a ranker's file (the ranker stage's Pusher), the two files are chained
as the ranker bundle tells an app (TwoStageRecommender): the retrieval
file's catalog scores with the history excluded, its best N candidates
re-ordered by the ranker's file above every other item. A target outside
the N keeps its retrieval rank, as in the chain's TFMA evaluation.

TFMA's own TFLite support does not fit: it feeds raw example features in
batches (this file has a static batch of one and index inputs an app maps)
and cannot exclude the history.
"""
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from components.lib import features as F
from components.lib import slices
from components.model.catalog_ranking import EXCLUDED_SCORE
from components.model.export.input_mapping import SEQUENCE, InputMapping
from components.model.export.tflite import (TFLiteRanker, TFLiteRecommender,
                                            TwoStageRecommender)
from components.user_modules.evaluation import rank_metrics, target_rank

HIT_RATE_AT_10 = "hit_rate@10"


def _values(feature: tf.train.Feature) -> list:
  kind = feature.WhichOneof("kind")
  values = list(getattr(feature, kind).value) if kind else []
  return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]


def example_query(example: tf.train.Example, mapping: InputMapping
                  ) -> Tuple[List[str], Dict[str, list], Dict[str, Any]]:
  """A session example's context as an app holds it: (item ids, position
  features per item, user features)."""
  values = {name: _values(f) for name, f in example.features.feature.items()}
  items = values.get(F.CONTEXT_ITEM_ID, [])
  features, user = {}, {}
  for name, spec in mapping.inputs.items():
    if name == F.CONTEXT_ITEM_ID or name not in values:
      continue
    if spec.kind == SEQUENCE:
      given = values[name]
      features[name] = ([given[i * spec.slots:(i + 1) * spec.slots]
                         for i in range(len(items))] if spec.slots > 1
                        else given[:len(items)])
    elif values[name]:
      user[name] = values[name][0]
  return items, features, user


def evaluate_file(tflite_path: str, records: Iterable[bytes],
                  mapping_path: Optional[str] = None,
                  ranker_path: Optional[str] = None) -> Dict[str, Any]:
  """Serialized test session examples -> {"users", "overall": metrics,
  "slices": {slice feature: {value: metrics}}} of the retrieval file, or of
  it chained with the ranker file at `ranker_path`."""
  recommender = TFLiteRecommender(tflite_path, num_threads=1,
                                  mapping_path=mapping_path)
  chain = (TwoStageRecommender(recommender, TFLiteRanker(ranker_path))
           if ranker_path else None)
  mapping = recommender.mapping
  ranks: List[int] = []
  slice_of: Dict[str, List[str]] = {}
  for record in records:
    example = tf.train.Example.FromString(record)
    scores = recommender.catalog_scores(
        *example_query(example, mapping)).copy()
    feature = example.features.feature
    history = mapping.item_indices(_values(feature[F.HISTORY_ITEM_ID])
                                   if F.HISTORY_ITEM_ID in feature else [])
    scores[np.array(history + [F.PAD_ID, F.OOV_ID], np.int64)] = EXCLUDED_SCORE
    if chain is not None:
      scores = chain.rerank(scores)
    (label,) = _values(feature[F.LABEL_ITEM_ID])
    ranks.append(target_rank(scores, mapping.index(F.CONTEXT_ITEM_ID, label)))
    for name in slices.FEATURES:
      value = _values(feature[name]) if name in feature else []
      if value:
        slice_of.setdefault(name, []).append(value[0])
  if not ranks:
    raise ValueError("the test split has no examples")
  ranks_array = np.array(ranks)
  return {
      "users": len(ranks),
      "overall": rank_metrics(ranks_array),
      "slices": {name: _by_value(ranks_array, values)
                 for name, values in slice_of.items()
                 if len(values) == len(ranks)},
  }


def _by_value(ranks: np.ndarray, values: Sequence[str]
              ) -> Dict[str, Dict[str, float]]:
  values = np.array(values)
  return {value: {**rank_metrics(ranks[values == value]),
                  "users": int(np.sum(values == value))}
          for value in sorted(set(values.tolist()), key=slices.tier_order)}


def push_refusal(tflite_hit_rate: float, saved_hit_rate: Optional[float],
                 max_drop: float) -> Optional[str]:
  """Why the file must not be pushed (None: it may): its HR@10 more than
  `max_drop` below the SavedModel's."""
  if saved_hit_rate is None or saved_hit_rate - tflite_hit_rate <= max_drop:
    return None
  return (f"model.tflite's test HR@10 {tflite_hit_rate:.4f} is "
          f"{saved_hit_rate - tflite_hit_rate:.4f} below the SavedModel's "
          f"{saved_hit_rate:.4f} (TFMA); serving.max_tflite_drop is "
          f"{max_drop:g}")
