"""The TFMA ranking metrics follow PROTOCOL.md (ties count against the target)."""
import math

import numpy as np
import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_specs
from tensorflow_model_analysis.metrics import metric_types

from components import evaluation
from components import serving
from components.model.ranking import EXCLUDED_SCORE


def inputs(label, scores):
  return metric_types.StandardMetricInputs(
      labels=np.array([label]),
      # The evaluate signature has two outputs: the model and the baseline.
      predictions={"scores": np.array(scores, np.float32),
                   "popularity_scores": np.zeros(len(scores), np.float32)},
      example_weights=np.array([1.0]))


def test_target_rank_counts_ties_against_the_target():
  assert evaluation.target_rank(np.array([0.1, 0.9, 0.5]), 1) == 0
  assert evaluation.target_rank(np.array([0.1, 0.9, 0.5]), 0) == 2
  # A model that scores everything the same ranks the target last.
  assert evaluation.target_rank(np.zeros(50), 7) == 49
  assert evaluation.target_rank(np.array([0.5, 0.5, 0.1]), 0) == 1


def compute(metric, elements):
  """Runs a metric's computations the way TFMA does: combine, then derive."""
  computations = metric.computations(eval_config=tfma.EvalConfig(),
                                     output_names=["scores"])
  combined = [c for c in computations
              if isinstance(c, metric_types.MetricComputation)]
  derived = [c for c in computations
             if isinstance(c, metric_types.DerivedMetricComputation)]
  values = {}
  for c in combined:
    fn = c.combiner
    acc = fn.create_accumulator()
    # Two accumulators merged, as Beam would with several bundles.
    half = len(elements) // 2
    acc2 = fn.create_accumulator()
    for e in elements[:half]:
      acc = fn.add_input(acc, e)
    for e in elements[half:]:
      acc2 = fn.add_input(acc2, e)
    values.update(fn.extract_output(fn.merge_accumulators([acc, acc2])))
  for d in derived:
    values.update(d.result(values))
  # Keys carry the output they rank (the model and the baseline are outputs
  # of one model; mixing them up would report one as the other).
  assert {k.output_name for k in values} == {"scores"}
  return {k.name: v for k, v in values.items() if not k.name.startswith("_")}


def test_hit_rate_and_ndcg_follow_the_protocol():
  n = 200
  elements = []
  ranks = [0, 0, 3, 9, 10, 49, 150]
  for rank in ranks:
    scores = np.linspace(1.0, 0.0, n)  # item i has the i-th best score
    elements.append(inputs(rank, scores))
  # All-equal scores: the target is last, whatever its id.
  elements.append(inputs(0, np.zeros(n)))
  total = len(elements)
  hr = lambda k: sum(r < k for r in ranks) / total  # noqa: E731
  assert compute(evaluation.HitRateAtK(1), elements)["hit_rate@1"] == hr(1)
  assert compute(evaluation.HitRateAtK(10), elements)["hit_rate@10"] == hr(10)
  assert compute(evaluation.HitRateAtK(50), elements)["hit_rate@50"] == hr(50)
  want = sum(1 / math.log2(r + 2) for r in ranks if r < 10) / total
  assert compute(evaluation.NdcgAtK(10), elements)["ndcg@10"] == pytest.approx(want)


def test_excluded_items_never_outrank_the_target():
  scores = np.array([EXCLUDED_SCORE] * 3 + [0.2, 0.1, -5.0], np.float32)
  assert evaluation.target_rank(scores, 5) == 2
  # A target that was itself excluded (seen before) ranks behind every item.
  assert evaluation.target_rank(scores, 0) == 5


def test_eval_config_gates_blessing_on_model_hit_rate_at_10():
  config = evaluation.eval_config(0.25)
  (model_spec,) = config.model_specs
  assert model_spec.signature_name == "evaluate"
  outputs = {tuple(s.output_names) for s in config.metrics_specs}
  assert outputs == {(serving.SCORES,), (serving.POPULARITY_SCORES,)}
  # The thresholds TFMA will check: exactly HR@10 of the model output, with
  # the key the metric is computed under (so it is found, not "missing").
  thresholds = tfma.metrics.metric_thresholds_from_metrics_specs(
      config.metrics_specs, config)
  (key,) = thresholds
  assert (key.name, key.output_name) == ("hit_rate@10", serving.SCORES)
  ((_, threshold),) = thresholds[key]
  assert threshold.lower_bound.value == 0.25
  computed = {k for c in metric_specs.to_computations(config.metrics_specs,
                                                      config) for k in c.keys}
  assert key in computed
