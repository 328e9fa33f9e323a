"""Top-k ranking metrics for TFMA, and the Evaluator's EvalConfig.

TFMA's built-in top-k metrics do not follow ../shared/PROTOCOL.md: ranks there
break ties in the target's favour, and they cannot exclude the items a user
has already seen. Here the model's `evaluate` signature already scores the
whole catalog with the history excluded (see serving.py), and these metrics
rank the target the protocol's way: its rank is the number of other items
scored at least as high, so ties count against it.

One combiner builds a histogram of target ranks (0..MAX_RANK-1, and one bucket
for everything beyond); HitRate@k and NDCG@k are derived from it, so all of
them cost one pass and share one computation per model output.
"""
import json
from typing import Any, Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util

from components import features as F
from components import serving

MAX_RANK = 100
RANK_HISTOGRAM = "_target_rank_histogram"
REPORTED_K = (1, 5, 10, 50)
NDCG_K = 10


def target_rank(scores: np.ndarray, target: int) -> int:
  """How many other items score at least as high as the target (0 = top)."""
  return int(np.count_nonzero(scores >= scores[target])) - 1


class _RankHistogramCombiner(beam.CombineFn):
  """Weighted counts of target ranks, one output (model, output name) each."""

  def __init__(self, key: metric_types.MetricKey,
               eval_config: Optional[tfma.EvalConfig], example_weighted: bool):
    self._key = key
    self._eval_config = eval_config
    self._example_weighted = example_weighted

  def create_accumulator(self) -> np.ndarray:
    return np.zeros(MAX_RANK + 1)

  def add_input(self, accumulator: np.ndarray,
                element: metric_types.StandardMetricInputs) -> np.ndarray:
    for label, scores, weight in metric_util.to_label_prediction_example_weight(
        element, eval_config=self._eval_config,
        model_name=self._key.model_name, output_name=self._key.output_name,
        example_weighted=self._example_weighted, flatten=False,
        require_single_example_weight=True):
      target = int(np.asarray(label).reshape(-1)[0])
      rank = target_rank(np.asarray(scores).reshape(-1), target)
      accumulator[min(rank, MAX_RANK)] += float(weight)
    return accumulator

  def merge_accumulators(self, accumulators: Iterable[np.ndarray]) -> np.ndarray:
    return np.sum(list(accumulators), axis=0)

  def extract_output(self, accumulator: np.ndarray
                     ) -> Dict[metric_types.MetricKey, np.ndarray]:
    return {self._key: accumulator}


def _histogram_key(model_name, output_name, example_weighted):
  return metric_types.MetricKey(
      name=RANK_HISTOGRAM, model_name=model_name, output_name=output_name,
      example_weighted=example_weighted)


def _ranking_computations(name: str, top_k: int, value_fn,
                          eval_config: Optional[tfma.EvalConfig] = None,
                          model_names: Optional[List[str]] = None,
                          output_names: Optional[List[str]] = None,
                          example_weighted: bool = False
                          ) -> metric_types.MetricComputations:
  if top_k > MAX_RANK:
    raise ValueError(f"{name}: top_k {top_k} exceeds MAX_RANK {MAX_RANK}")
  computations = []
  for model_name in model_names or [""]:
    for output_name in output_names or [""]:
      histogram = _histogram_key(model_name, output_name, example_weighted)
      key = metric_types.MetricKey(
          name=name, model_name=model_name, output_name=output_name,
          example_weighted=example_weighted)
      computations.append(metric_types.MetricComputation(
          keys=[histogram], preprocessors=None,
          combiner=_RankHistogramCombiner(histogram, eval_config,
                                          example_weighted)))

      def result(metrics, key=key, histogram=histogram):
        counts = metrics[histogram]
        total = counts.sum()
        return {key: float(value_fn(counts, top_k) / total) if total else
                float("nan")}

      computations.append(metric_types.DerivedMetricComputation(
          keys=[key], result=result))
  return computations


def _hits(counts: np.ndarray, k: int) -> float:
  return counts[:k].sum()


def _dcg(counts: np.ndarray, k: int) -> float:
  return float(np.sum(counts[:k] / np.log2(np.arange(k) + 2.0)))


def _computations_of(value_fn):
  """A computations function for a histogram-derived metric.

  TFMA passes a computations function only the arguments its signature names,
  so the signature spells them out.
  """
  def computations(name: str, top_k: int,
                   eval_config: Optional[tfma.EvalConfig] = None,
                   model_names: Optional[List[str]] = None,
                   output_names: Optional[List[str]] = None,
                   example_weighted: bool = False):
    return _ranking_computations(name, top_k, value_fn, eval_config,
                                 model_names, output_names, example_weighted)
  return computations


# TFMA resolves MetricConfig.class_name among its own metrics first, so these
# names must not collide with built-ins such as tfma.metrics.NDCG.
class HitRateAtK(metric_types.Metric):
  """HR@k: share of examples whose target ranks in the top k (one target)."""

  def __init__(self, top_k: int = 10, name: Optional[str] = None):
    super().__init__(_computations_of(_hits), name=name or f"hit_rate@{top_k}",
                     top_k=top_k)


class NdcgAtK(metric_types.Metric):
  """NDCG@k with one target: mean of 1/log2(rank + 2) over ranks below k."""

  def __init__(self, top_k: int = 10, name: Optional[str] = None):
    super().__init__(_computations_of(_dcg), name=name or f"ndcg@{top_k}",
                     top_k=top_k)


def _metric(cls, top_k: int, **kwargs) -> tfma.MetricConfig:
  return tfma.MetricConfig(class_name=cls.__name__, module=__name__,
                           config=json.dumps({"top_k": top_k}), **kwargs)


def ranking_metric_configs(min_hit_rate_at_10: Optional[float] = None
                           ) -> List[tfma.MetricConfig]:
  """HR@1/5/10/50, NDCG@10 and the example count; optionally a lower bound
  on HR@10 (a metric computed after export carries its own threshold)."""
  gate = {}
  if min_hit_rate_at_10 is not None:
    gate["threshold"] = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(
            lower_bound={"value": min_hit_rate_at_10}))
  return ([_metric(HitRateAtK, k, **(gate if k == 10 else {}))
           for k in REPORTED_K]
          + [_metric(NdcgAtK, NDCG_K)]
          + [tfma.MetricConfig(class_name="ExampleCount")])


def eval_config(min_hit_rate_at_10: float) -> tfma.EvalConfig:
  """Model and baseline ranked on the test split; HR@10 gates the blessing."""
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(
          signature_name="evaluate",
          model_type=tfma.TF_GENERIC,
          label_key=F.LABEL_ITEM_ID,
          preprocessing_function_names=["transform_features"])],
      slicing_specs=[tfma.SlicingSpec()],
      metrics_specs=[
          tfma.MetricsSpec(
              metrics=ranking_metric_configs(min_hit_rate_at_10),
              output_names=[serving.SCORES]),
          tfma.MetricsSpec(
              metrics=ranking_metric_configs(),
              output_names=[serving.POPULARITY_SCORES]),
      ])


def read_metrics(evaluation_uri: str) -> Dict[str, Dict[str, Any]]:
  """{output name: {metric: value}} for the overall slice of an evaluation."""
  result = tfma.load_metrics(evaluation_uri)
  metrics: Dict[str, Dict[str, Any]] = {}
  for per_slice in result:
    if per_slice.slice_key.single_slice_keys:
      continue
    for key_and_value in per_slice.metric_keys_and_values:
      key, value = key_and_value.key, key_and_value.value
      if key.name.startswith("_"):
        continue
      metrics.setdefault(key.output_name, {})[key.name] = (
          value.double_value.value)
  return metrics
