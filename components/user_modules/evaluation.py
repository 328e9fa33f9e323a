"""Evaluator module: TFMA metrics (top-k ranking, rating errors), the
Evaluators' EvalConfigs, and reading their results back.

TFMA's built-in top-k metrics do not follow ../shared/PROTOCOL.md: ranks there
break ties in the target's favour, and they cannot exclude the items a user
has already seen. Here the model's `evaluate` signature already scores the
whole catalog with the history excluded (components/model/export/), and
these metrics rank the target the protocol's way: its rank is the number of
other items scored at least as high, so ties count against it.

One combiner builds a histogram of target ranks (0..MAX_RANK-1, and one bucket
for everything beyond); HitRate@k, NDCG@k and the HR@k curve (k = 1..MAX_RANK)
are derived from it, so all of them cost one pass and share one computation
per model output.

The EvalConfig ranks the candidate and, when the pipeline has one, the
latest blessed model (the baseline TFX's resolver finds in MLMD) on every
slice of components/lib/slices.py; HR@10 gates the blessing with a lower bound
and, against the baseline, a largest tolerated drop.
"""
import json
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.writers import eval_config_writer

from components.lib import features as F
from components.lib import slices
from components.model.export import signature_names as names

MAX_RANK = 100
RANK_HISTOGRAM = "_target_rank_histogram"
REPORTED_K = (1, 5, 10, 50)
NDCG_K = 10
HIT_RATE_CURVE = "hit_rate_curve"
# The ranking metrics every report shows, in this order.
REPORTED_METRICS = tuple(f"hit_rate@{k}" for k in REPORTED_K) + (
    f"ndcg@{NDCG_K}",)


def target_rank(scores: np.ndarray, target: int) -> int:
  """How many other items score at least as high as the target (0 = top)."""
  return int(np.count_nonzero(scores >= scores[target])) - 1


def rank_metrics(ranks: np.ndarray) -> Dict[str, float]:
  """The reported metrics (HR@k, NDCG@10) of target ranks, one target per
  user, as the TFMA metrics derive them (for evaluations outside TFMA)."""
  ranks = np.asarray(ranks)
  metrics = {f"hit_rate@{k}": float(np.mean(ranks < k)) for k in REPORTED_K}
  gains = np.where(ranks < NDCG_K, 1.0 / np.log2(ranks + 2.0), 0.0)
  metrics[f"ndcg@{NDCG_K}"] = float(np.mean(gains))
  return metrics


class _ArraySumCombiner(beam.CombineFn):
  """A statistic that is a sum of per-example arrays, under one metric key:
  subclasses say what an example adds."""

  def __init__(self, key: metric_types.MetricKey,
               eval_config: Optional[tfma.EvalConfig], example_weighted: bool):
    self._key = key
    self._eval_config = eval_config
    self._example_weighted = example_weighted

  def merge_accumulators(self, accumulators: Iterable[np.ndarray]) -> np.ndarray:
    return np.sum(list(accumulators), axis=0)

  def extract_output(self, accumulator: np.ndarray
                     ) -> Dict[metric_types.MetricKey, np.ndarray]:
    return {self._key: accumulator}


class _RankHistogramCombiner(_ArraySumCombiner):
  """Weighted counts of target ranks, one output (model, output name) each."""

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


def _statistic_computations(name: str, statistic_name, make_combiner,
                            derive, model_names: Optional[List[str]],
                            output_names: Optional[List[str]],
                            example_weighted: bool
                            ) -> metric_types.MetricComputations:
  """Per model and output, a combiner computation of a statistic (named by
  `statistic_name(output)`: TFMA runs a computation once per key, so every
  metric derived from one statistic shares its pass) and the metric
  `derive(statistic)` from it."""
  computations = []
  for model_name in model_names or [""]:
    for output_name in output_names or [""]:
      statistic = metric_types.MetricKey(
          name=statistic_name(output_name), model_name=model_name,
          output_name=output_name, example_weighted=example_weighted)
      key = metric_types.MetricKey(
          name=name, model_name=model_name, output_name=output_name,
          example_weighted=example_weighted)
      computations.append(metric_types.MetricComputation(
          keys=[statistic], preprocessors=None,
          combiner=make_combiner(statistic)))

      def result(metrics, key=key, statistic=statistic):
        value = derive(metrics[statistic])
        return {key: value if isinstance(value, np.ndarray) else float(value)}

      computations.append(metric_types.DerivedMetricComputation(
          keys=[key], result=result))
  return computations


def _hits(counts: np.ndarray, k: int) -> float:
  return counts[:k].sum()


def _hits_curve(counts: np.ndarray, k: int) -> np.ndarray:
  return np.cumsum(counts[:k])


def _dcg(counts: np.ndarray, k: int) -> float:
  return float(np.sum(counts[:k] / np.log2(np.arange(k) + 2.0)))


def _computations_of(value_fn):
  """A computations function for a metric of the target-rank histogram.

  TFMA passes a computations function only the arguments its signature names,
  so the signature spells them out.
  """
  def computations(name: str, top_k: int,
                   eval_config: Optional[tfma.EvalConfig] = None,
                   model_names: Optional[List[str]] = None,
                   output_names: Optional[List[str]] = None,
                   example_weighted: bool = False):
    if top_k > MAX_RANK:
      raise ValueError(f"{name}: top_k {top_k} exceeds MAX_RANK {MAX_RANK}")

    def derive(counts: np.ndarray):
      total = counts.sum()
      return value_fn(counts, top_k) / total if total else float("nan")
    return _statistic_computations(
        name, lambda _: RANK_HISTOGRAM,
        lambda key: _RankHistogramCombiner(key, eval_config, example_weighted),
        derive, model_names, output_names, example_weighted)
  return computations


# TFMA resolves MetricConfig.class_name among its own metrics first, so these
# names must not collide with built-ins such as tfma.metrics.NDCG.
class HitRateAtK(metric_types.Metric):
  """HR@k: share of examples whose target ranks in the top k (one target)."""

  def __init__(self, top_k: int = 10, name: Optional[str] = None):
    super().__init__(_computations_of(_hits), name=name or f"hit_rate@{top_k}",
                     top_k=top_k)


class HitRateCurve(metric_types.Metric):
  """HR@k for every k = 1..top_k, as one array (the report's HR@k plot)."""

  def __init__(self, top_k: int = MAX_RANK, name: Optional[str] = None):
    super().__init__(_computations_of(_hits_curve),
                     name=name or HIT_RATE_CURVE, top_k=top_k)


class NdcgAtK(metric_types.Metric):
  """NDCG@k with one target: mean of 1/log2(rank + 2) over ranks below k."""

  def __init__(self, top_k: int = 10, name: Optional[str] = None):
    super().__init__(_computations_of(_dcg), name=name or f"ndcg@{top_k}",
                     top_k=top_k)


def _metric(cls, top_k: int, **kwargs) -> tfma.MetricConfig:
  return tfma.MetricConfig(class_name=cls.__name__, module=__name__,
                           config=json.dumps({"top_k": top_k}), **kwargs)


def _overall(gate: tfma.MetricThreshold) -> Dict[str, Any]:
  """A MetricConfig's thresholds on the overall slice only (its `threshold`
  would apply to every slice; the slices are for reading, not blessing)."""
  return {"per_slice_thresholds": [tfma.PerSliceMetricThreshold(
      slicing_specs=[tfma.SlicingSpec()], threshold=gate)]} if (
          gate.ByteSize()) else {}


def ranking_metric_configs(min_hit_rate_at_10: Optional[float] = None,
                           max_hit_rate_drop: Optional[float] = None,
                           min_ndcg_gain: Optional[float] = None
                           ) -> List[tfma.MetricConfig]:
  """HR@1/5/10/50, NDCG@10, the HR@k curve and the example count;
  optionally, on the overall slice, a lower bound on HR@10, its largest
  drop against the baseline, and the least NDCG@10 gain over the baseline
  (a metric computed after export carries its own threshold; TFX drops the
  change thresholds when there is no baseline)."""
  hit_rate = tfma.MetricThreshold()
  if min_hit_rate_at_10 is not None:
    hit_rate.value_threshold.lower_bound.value = min_hit_rate_at_10
  if max_hit_rate_drop is not None:
    hit_rate.change_threshold.direction = tfma.MetricDirection.HIGHER_IS_BETTER
    hit_rate.change_threshold.absolute.value = -max_hit_rate_drop
  ndcg = tfma.MetricThreshold()
  if min_ndcg_gain is not None:
    ndcg.change_threshold.direction = tfma.MetricDirection.HIGHER_IS_BETTER
    ndcg.change_threshold.absolute.value = min_ndcg_gain
  return ([_metric(HitRateAtK, k, **(_overall(hit_rate) if k == 10 else {}))
           for k in REPORTED_K]
          + [_metric(NdcgAtK, NDCG_K, **_overall(ndcg)),
             _metric(HitRateCurve, MAX_RANK)]
          + [tfma.MetricConfig(class_name="ExampleCount")])


def eval_config(min_hit_rate_at_10: Optional[float] = None,
                max_hit_rate_drop: Optional[float] = None,
                slice_features: Sequence[str] = slices.FEATURES,
                min_ndcg_gain: Optional[float] = None) -> tfma.EvalConfig:
  """The candidate (and baseline) ranked on the test split, overall and per
  slice; the candidate's HR@10 (retrieval), or its NDCG@10 gain over the
  baseline (the ranker's chain over retrieval alone), gates the blessing
  (no gate without bounds: the forward evaluation's).

  One unnamed model spec: given a baseline, TFX's Evaluator adds its copy
  (TFMA's names `candidate` and `baseline`); without one it keeps the spec
  as it is and drops the change threshold.
  """
  return _test_split_config(F.LABEL_ITEM_ID, slice_features, [
      tfma.MetricsSpec(
          metrics=ranking_metric_configs(min_hit_rate_at_10,
                                         max_hit_rate_drop, min_ndcg_gain),
          output_names=[names.SCORES]),
      tfma.MetricsSpec(
          metrics=ranking_metric_configs(),
          output_names=[names.POPULARITY_SCORES]),
  ])


def _test_split_config(label_key: str, slice_features: Sequence[str],
                       metrics_specs: List[tfma.MetricsSpec]
                       ) -> tfma.EvalConfig:
  """The models' `evaluate` outputs on the examples, label from their
  `transform_features`, overall and per slice."""
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(
          signature_name="evaluate",
          model_type=tfma.TF_GENERIC,
          label_key=label_key,
          preprocessing_function_names=["transform_features"])],
      slicing_specs=[tfma.SlicingSpec()] + [
          tfma.SlicingSpec(feature_keys=[name]) for name in slice_features],
      metrics_specs=metrics_specs)


# --- Rating metrics (the ranking stage) --------------------------------------
# TFMA 0.47 has MeanSquaredError and MeanAbsoluteError but no RMSE, and no
# metric that compares two outputs of one model: both come from one
# combiner of error sums here.
ERROR_SUMS = "_rating_error_sums"
RMSE = "rmse"
MAE = "mae"
RMSE_GAIN = "rmse_gain_over_item_mean"


class _ErrorSumsCombiner(_ArraySumCombiner):
  """[weighted squared errors, absolute errors, weights] of the outputs
  named, in order, against the label."""

  def __init__(self, key: metric_types.MetricKey, outputs: Sequence[str],
               eval_config: Optional[tfma.EvalConfig], example_weighted: bool):
    super().__init__(key, eval_config, example_weighted)
    self._outputs = list(outputs)

  def create_accumulator(self) -> np.ndarray:
    return np.zeros([len(self._outputs), 3])

  def add_input(self, accumulator: np.ndarray,
                element: metric_types.StandardMetricInputs) -> np.ndarray:
    for row, output in enumerate(self._outputs):
      for label, prediction, weight in (
          metric_util.to_label_prediction_example_weight(
              element, eval_config=self._eval_config,
              model_name=self._key.model_name, output_name=output,
              example_weighted=self._example_weighted, flatten=True)):
        error = float(np.asarray(prediction).reshape(-1)[0]) - float(
            np.asarray(label).reshape(-1)[0])
        weight = float(np.asarray(weight).reshape(-1)[0])
        accumulator[row] += [weight * error * error, weight * abs(error),
                             weight]
    return accumulator


def _rmse(sums: np.ndarray) -> float:
  return np.sqrt(sums[0, 0] / sums[0, 2])


def _mae(sums: np.ndarray) -> float:
  return sums[0, 1] / sums[0, 2]


def _rmse_gain(sums: np.ndarray) -> float:
  return np.sqrt(sums[1, 0] / sums[1, 2]) - np.sqrt(sums[0, 0] / sums[0, 2])


def _rating_metric_of(value_fn, reference_output: str = ""):
  """A computations function for value_fn(error sums [outputs, 3]) of the
  output (and of `reference_output`); TFMA passes only the arguments it
  names."""
  def computations(name: str, eval_config: Optional[tfma.EvalConfig] = None,
                   model_names: Optional[List[str]] = None,
                   output_names: Optional[List[str]] = None,
                   example_weighted: bool = False):
    def outputs(output_name: str) -> List[str]:
      return [output_name] + ([reference_output] if reference_output else [])

    def derive(sums: np.ndarray):
      return value_fn(sums) if sums[:, 2].all() else float("nan")
    return _statistic_computations(
        name, lambda output: f"{ERROR_SUMS}_{'_'.join(outputs(output))}",
        lambda key: _ErrorSumsCombiner(key, outputs(key.output_name),
                                       eval_config, example_weighted),
        derive, model_names, output_names, example_weighted)
  return computations


class RootMeanSquaredRatingError(metric_types.Metric):
  """RMSE of a predicted rating."""

  def __init__(self, name: str = RMSE):
    super().__init__(_rating_metric_of(_rmse), name=name)


class MeanAbsoluteRatingError(metric_types.Metric):
  """MAE of a predicted rating (TFMA's MeanAbsoluteError, beside the RMSE
  from the same sums)."""

  def __init__(self, name: str = MAE):
    super().__init__(_rating_metric_of(_mae), name=name)


class RmseGainOverItemMean(metric_types.Metric):
  """The per-item-mean baseline's RMSE minus this output's (> 0: better)."""

  def __init__(self, name: str = RMSE_GAIN):
    super().__init__(_rating_metric_of(_rmse_gain,
                                       names.ITEM_MEAN_RATING),
                     name=name)


def rating_eval_config(min_rmse_gain: float, max_rmse_increase: float,
                       slice_features: Sequence[str] = slices.FEATURES
                       ) -> tfma.EvalConfig:
  """The rating model and its two baselines (train mean, per-item train
  mean) on the test split, overall and per slice. The blessing, on the
  overall slice: RMSE at least `min_rmse_gain` below the per-item mean's,
  and at most `max_rmse_increase` above the latest blessed rating model's."""
  def metric(cls, threshold=None):
    return tfma.MetricConfig(class_name=cls.__name__, module=__name__,
                             **(_overall(threshold) if threshold else {}))
  gain = tfma.MetricThreshold()
  gain.value_threshold.lower_bound.value = min_rmse_gain
  no_worse = tfma.MetricThreshold()
  no_worse.change_threshold.direction = tfma.MetricDirection.LOWER_IS_BETTER
  no_worse.change_threshold.absolute.value = max_rmse_increase
  errors = [tfma.MetricConfig(class_name="MeanSquaredError"),
            metric(MeanAbsoluteRatingError)]
  return _test_split_config(F.LABEL_RATING, slice_features, [
      tfma.MetricsSpec(
          metrics=[metric(RootMeanSquaredRatingError, no_worse),
                   metric(RmseGainOverItemMean, gain)] + errors + [
                       tfma.MetricConfig(class_name="ExampleCount")],
          output_names=[names.RATING]),
      tfma.MetricsSpec(
          metrics=[metric(RootMeanSquaredRatingError)] + errors,
          output_names=[names.GLOBAL_MEAN_RATING,
                        names.ITEM_MEAN_RATING]),
  ])


# Roles of the models in an evaluation, as read_sliced_metrics reports them.
CANDIDATE, BASELINE, DIFF = "candidate", "baseline", "diff"
SliceKey = Tuple[Tuple[str, str], ...]  # () is the overall slice


def _value(value) -> Any:
  kind = value.WhichOneof("type")
  if kind == "double_value":
    return value.double_value.value
  if kind == "array_value":
    return list(value.array_value.float64_values or
                value.array_value.float32_values)
  return None


def _slice_key(slice_key) -> SliceKey:
  key = []
  for single in slice_key.single_slice_keys:
    kind = single.WhichOneof("kind")
    value = getattr(single, kind)
    key.append((single.column, value.decode("utf-8")
                if isinstance(value, bytes) else str(value)))
  return tuple(key)


def read_sliced_metrics(evaluation_uri: str
                        ) -> Dict[SliceKey, Dict[str, Dict[str, Dict[str, Any]]]]:
  """{slice: {role: {output: {metric: value}}}} of an evaluation, roles being
  the candidate, the baseline (when there was one) and their difference."""
  found: Dict[SliceKey, Dict[str, Dict[str, Dict[str, Any]]]] = {}
  for per_slice in tfma.load_metrics(evaluation_uri):
    roles = found.setdefault(_slice_key(per_slice.slice_key), {})
    for key_and_value in per_slice.metric_keys_and_values:
      key = key_and_value.key
      value = _value(key_and_value.value)
      if key.name.startswith("_") or value is None:
        continue
      role = (DIFF if key.is_diff else
              BASELINE if key.model_name == tfma.BASELINE_KEY else CANDIDATE)
      roles.setdefault(role, {}).setdefault(key.output_name, {})[key.name] = (
          value)
  return found


def read_metrics(evaluation_uri: str) -> Dict[str, Dict[str, float]]:
  """{output name: {metric: value}}: the candidate's numbers on the overall
  slice (the HR@k curve left out)."""
  overall = read_sliced_metrics(evaluation_uri).get((), {})
  return {output: {name: value for name, value in metrics.items()
                   if not isinstance(value, list)}
          for output, metrics in overall.get(CANDIDATE, {}).items()}


def _change_bound(threshold) -> Tuple[str, str]:
  """(met, failed) comparison signs of a change threshold."""
  if threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER:
    return "<=", ">"
  return ">=", "<"


def _checks(evaluation_uri: str) -> List[str]:
  """The thresholds the evaluation checked, with the values they met."""
  config = eval_config_writer.load_eval_run(evaluation_uri)[0]
  overall = read_sliced_metrics(evaluation_uri).get((), {})
  checks = []
  for key, thresholds in tfma.metrics.metric_thresholds_from_metrics_specs(
      config.metrics_specs, config).items():
    if key.model_name == tfma.BASELINE_KEY:  # the validator skips these
      continue
    role = DIFF if key.is_diff else CANDIDATE
    value = overall.get(role, {}).get(key.output_name, {}).get(key.name)
    for _, threshold in thresholds:
      if isinstance(threshold, tfma.GenericChangeThreshold):
        checks.append(f"{key.name} change vs baseline {value:+.4f} "
                      f"{_change_bound(threshold)[0]} "
                      f"{threshold.absolute.value:+.4f}")
      elif threshold.HasField("lower_bound"):
        checks.append(f"{key.name} {value:.4f} >= "
                      f"{threshold.lower_bound.value:.4f}")
  return checks


def blessing_reason(evaluation_uri: str) -> str:
  """Why TFMA's validation blessed the model or not, in one line."""
  result = tfma.load_validation_result(evaluation_uri)
  if result.validation_ok:
    return "passed: " + "; ".join(_checks(evaluation_uri))
  failures = []
  for per_slice in result.metric_validations_per_slice:
    where = _slice_key(per_slice.slice_key)
    for failure in per_slice.failures:
      key = failure.metric_key
      value = failure.metric_value.double_value.value
      threshold = failure.metric_threshold
      if key.is_diff:
        change = threshold.change_threshold
        shown = (f"{key.name} change vs baseline {value:+.4f} "
                 f"{_change_bound(change)[1]} {change.absolute.value:+.4f}")
      else:
        shown = (f"{key.name} {value:.4f} < "
                 f"{threshold.value_threshold.lower_bound.value:.4f}")
      on = f" on {dict(where)}" if where else ""
      failures.append(f"{shown}{on}" + (f": {failure.message}"
                                         if failure.message else ""))
  if result.missing_thresholds:
    failures.append(f"{len(result.missing_thresholds)} threshold(s) had no "
                    "metric")
  return "failed: " + ("; ".join(failures) or "validation failed")
