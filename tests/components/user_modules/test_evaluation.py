"""The TFMA ranking metrics follow PROTOCOL.md (ties count against the target)."""
import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_specs
from tensorflow_model_analysis.metrics import metric_types

from components.lib import features as F
from components.lib import slices
from components.model.catalog_ranking import EXCLUDED_SCORE
from components.model.export import retrieval
from components.user_modules import evaluation


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


def _thresholds(config):
  """{(metric, model, is_diff): threshold} TFMA will check."""
  found = tfma.metrics.metric_thresholds_from_metrics_specs(
      config.metrics_specs, config)
  return {(k.name, k.model_name, k.is_diff, k.output_name): t
          for k, values in found.items() for _, t in values}


def test_eval_config_gates_blessing_on_model_hit_rate_at_10():
  config = evaluation.eval_config(0.25, 0.02)
  (model_spec,) = config.model_specs
  assert model_spec.signature_name == "evaluate"
  outputs = {tuple(s.output_names) for s in config.metrics_specs}
  assert outputs == {(retrieval.SCORES,), (retrieval.POPULARITY_SCORES,)}
  assert [list(s.feature_keys) for s in config.slicing_specs] == [
      []] + [[name] for name in slices.FEATURES]
  # No baseline yet (TFX's Evaluator on the first run): the lower bound only.
  alone = tfma.utils.update_eval_config_with_defaults(
      config, has_baseline=False, rubber_stamp=True)
  ((name, model, diff, output), threshold), = _thresholds(alone).items()
  assert (name, model, diff, output) == ("hit_rate@10", "", False,
                                         retrieval.SCORES)
  assert threshold.lower_bound.value == 0.25
  # With the latest blessed model: the bound and the change threshold, with
  # the keys the metric is computed under (so they are found, not "missing").
  paired = tfma.utils.update_eval_config_with_defaults(config,
                                                       has_baseline=True)
  # (TFMA's validator skips the baseline's own keys.)
  thresholds = {k: t for k, t in _thresholds(paired).items()
                if k[1] != tfma.BASELINE_KEY}
  assert set(thresholds) == {
      ("hit_rate@10", tfma.CANDIDATE_KEY, False, retrieval.SCORES),
      ("hit_rate@10", tfma.CANDIDATE_KEY, True, retrieval.SCORES)}
  change = thresholds[("hit_rate@10", tfma.CANDIDATE_KEY, True,
                       retrieval.SCORES)]
  assert change.direction == tfma.MetricDirection.HIGHER_IS_BETTER
  assert change.absolute.value == pytest.approx(-0.02)
  computed = {k for c in metric_specs.to_computations(paired.metrics_specs,
                                                      paired) for k in c.keys}
  # (Diffs are computed from the two models' values, after the computations.)
  assert {k._replace(is_diff=False)
          for k in tfma.metrics.metric_thresholds_from_metrics_specs(
              paired.metrics_specs, paired)} <= computed


N_ITEMS = 20


class _FixedRanker(tf.Module):
  """An exported model with the pipeline's signatures: `good` scores every
  target first; the other scores only the `easy` examples' targets first
  and gives the rest one score for all items (so their targets rank last)."""

  def __init__(self, good: bool):
    super().__init__()
    self._good = good
    examples = [tf.TensorSpec([None], tf.string, "examples")]
    self.evaluate = tf.function(self._evaluate, input_signature=examples)
    self.transform_features = tf.function(self._transform,
                                          input_signature=examples)

  @staticmethod
  def _parse(examples):
    return tf.io.parse_example(examples, {
        F.LABEL_ITEM_ID: tf.io.FixedLenFeature([], tf.int64),
        "easy": tf.io.FixedLenFeature([], tf.int64)})

  def _evaluate(self, examples):
    parsed = self._parse(examples)
    scores = tf.one_hot(parsed[F.LABEL_ITEM_ID], N_ITEMS)
    if not self._good:
      scores *= tf.cast(parsed["easy"], tf.float32)[:, None]
    return {retrieval.SCORES: scores,
            retrieval.POPULARITY_SCORES: tf.zeros_like(scores)}

  def _transform(self, examples):
    return {F.LABEL_ITEM_ID: self._parse(examples)[F.LABEL_ITEM_ID]}

  def save(self, path):
    tf.saved_model.save(self, path, signatures={
        "evaluate": self.evaluate.get_concrete_function(),
        "transform_features": self.transform_features.get_concrete_function()})


@pytest.fixture(scope="module")
def worse_than_baseline(tmp_path_factory):
  """TFMA evaluates a candidate worse than its baseline with our EvalConfig,
  the way TFX's Evaluator does once a blessed model exists."""
  root = tmp_path_factory.mktemp("tfma")
  data = str(root / "examples.tfrecord")
  with tf.io.TFRecordWriter(data) as writer:
    for i in range(40):
      example = tf.train.Example()
      feature = example.features.feature
      feature[F.LABEL_ITEM_ID].int64_list.value.append(i % N_ITEMS)
      feature["easy"].int64_list.value.append(i % 2)
      feature[slices.TARGET_POPULARITY].bytes_list.value.append(
          b"head" if i % 2 else b"tail")
      writer.write(example.SerializeToString())
  config = tfma.utils.update_eval_config_with_defaults(
      evaluation.eval_config(0.1, 0.05), has_baseline=True)
  models = []
  for spec in config.model_specs:
    path = str(root / spec.name)
    _FixedRanker(good=spec.is_baseline).save(path)
    models.append(tfma.default_eval_shared_model(
        eval_saved_model_path=path, model_name=spec.name, eval_config=config))
  output = str(root / "evaluation")
  tfma.run_model_analysis(eval_shared_model=models, eval_config=config,
                          data_location=data, output_path=output)
  return output


def test_a_candidate_worse_than_the_baseline_is_not_blessed(
    worse_than_baseline):
  metrics = evaluation.read_sliced_metrics(worse_than_baseline)
  overall = metrics[()]
  model = overall[evaluation.CANDIDATE][retrieval.SCORES]
  baseline = overall[evaluation.BASELINE][retrieval.SCORES]
  diff = overall[evaluation.DIFF][retrieval.SCORES]
  assert (model["hit_rate@10"], baseline["hit_rate@10"]) == (0.5, 1.0)
  assert diff["hit_rate@10"] == pytest.approx(-0.5)
  assert model["example_count"] == 40
  # Per slice: the easy (head) targets are all hits, the others none.
  head = metrics[((slices.TARGET_POPULARITY, "head"),)]
  tail = metrics[((slices.TARGET_POPULARITY, "tail"),)]
  assert head[evaluation.CANDIDATE][retrieval.SCORES]["hit_rate@10"] == 1.0
  assert tail[evaluation.CANDIDATE][retrieval.SCORES]["hit_rate@10"] == 0.0
  # The HR@k curve: k = 1..100, HR@10 at k = 10.
  curve = model[evaluation.HIT_RATE_CURVE]
  assert len(curve) == evaluation.MAX_RANK
  assert curve[9] == model["hit_rate@10"] and curve[-1] == 1.0
  # The candidate passes the lower bound (0.5 >= 0.1) but dropped 0.5 > 0.05.
  assert not tfma.load_validation_result(worse_than_baseline).validation_ok
  reason = evaluation.blessing_reason(worse_than_baseline)
  assert reason.startswith(
      "failed: hit_rate@10 change vs baseline -0.5000 < -0.0500")
  # Only the overall slice is gated (the tail slice's HR@10 of 0 is not).
  assert reason.count("hit_rate@10") == 1, reason
  # read_metrics: the candidate's scalars only.
  assert evaluation.read_metrics(worse_than_baseline)[retrieval.SCORES] == {
      k: v for k, v in model.items() if k != evaluation.HIT_RATE_CURVE}


# --- Rating metrics (the ranking stage) ---------------------------------------

def rating_inputs(label, rating, item_mean, weight=1.0):
  return metric_types.StandardMetricInputs(
      labels=np.array([label]),
      predictions={"rating": np.array([rating], np.float32),
                   "item_mean_rating": np.array([item_mean], np.float32),
                   "global_mean_rating": np.array([3.5], np.float32)},
      example_weights=np.array([weight]))


def compute_rating(metric, elements, example_weighted=False):
  computations = metric.computations(eval_config=tfma.EvalConfig(),
                                     output_names=["rating"],
                                     example_weighted=example_weighted)
  values = {}
  for c in computations:
    if isinstance(c, metric_types.MetricComputation):
      fn = c.combiner
      half = len(elements) // 2
      accumulators = [fn.create_accumulator(), fn.create_accumulator()]
      for e in elements[:half]:
        accumulators[0] = fn.add_input(accumulators[0], e)
      for e in elements[half:]:
        accumulators[1] = fn.add_input(accumulators[1], e)
      values.update(fn.extract_output(fn.merge_accumulators(accumulators)))
  for c in computations:
    if isinstance(c, metric_types.DerivedMetricComputation):
      values.update(c.result(values))
  assert {k.output_name for k in values} == {"rating"}
  return {k.name: v for k, v in values.items() if not k.name.startswith("_")}


def test_rating_errors_and_the_gain_over_the_item_mean():
  labels = np.array([4.0, 1.0, 5.0, 3.0])
  model = np.array([3.5, 2.0, 4.5, 3.0])
  item_mean = np.array([3.0, 3.0, 3.0, 3.0])
  elements = [rating_inputs(*values) for values in zip(labels, model,
                                                        item_mean)]
  rmse = np.sqrt(np.mean((model - labels) ** 2))
  assert compute_rating(evaluation.RootMeanSquaredRatingError(), elements)[
      "rmse"] == pytest.approx(rmse)
  assert compute_rating(evaluation.MeanAbsoluteRatingError(), elements)[
      "mae"] == pytest.approx(np.mean(np.abs(model - labels)))
  gain = np.sqrt(np.mean((item_mean - labels) ** 2)) - rmse
  assert gain > 0
  assert compute_rating(evaluation.RmseGainOverItemMean(), elements)[
      evaluation.RMSE_GAIN] == pytest.approx(gain)
  # Weighted: an example of weight 2 counts twice.
  weighted = elements[:3] + [rating_inputs(3.0, 3.0, 3.0, weight=2.0)]
  doubled = np.sqrt(np.sum((model - labels) ** 2) / 5)
  assert compute_rating(evaluation.RootMeanSquaredRatingError(), weighted,
                        example_weighted=True)["rmse"] == pytest.approx(doubled)


def test_rating_eval_config_gates_on_the_overall_slice():
  config = evaluation.rating_eval_config(0.02, 0.01)
  assert config.model_specs[0].label_key == F.LABEL_RATING
  # No baseline yet: the gain over the per-item mean alone.
  alone = tfma.utils.update_eval_config_with_defaults(
      config, has_baseline=False, rubber_stamp=True)
  ((name, _, diff, output), threshold), = _thresholds(alone).items()
  assert (name, diff, output) == (evaluation.RMSE_GAIN, False, "rating")
  assert threshold.lower_bound.value == 0.02
  # With the latest blessed rating model: at most 0.01 more RMSE.
  paired = tfma.utils.update_eval_config_with_defaults(config,
                                                       has_baseline=True)
  thresholds = {k: t for k, t in _thresholds(paired).items()
                if k[1] != tfma.BASELINE_KEY}
  assert set(thresholds) == {
      (evaluation.RMSE_GAIN, tfma.CANDIDATE_KEY, False, "rating"),
      (evaluation.RMSE, tfma.CANDIDATE_KEY, True, "rating")}
  change = thresholds[(evaluation.RMSE, tfma.CANDIDATE_KEY, True, "rating")]
  assert change.direction == tfma.MetricDirection.LOWER_IS_BETTER
  assert change.absolute.value == pytest.approx(0.01)
  # Every gate is on the overall slice only.
  for spec in config.metrics_specs:
    for metric in spec.metrics:
      for gate in metric.per_slice_thresholds:
        assert list(gate.slicing_specs) == [tfma.SlicingSpec()]


def test_rank_metrics_of_ranks_outside_tfma():
  metrics = evaluation.rank_metrics(np.array([0, 3, 9, 10, 50]))
  assert metrics["hit_rate@1"] == pytest.approx(0.2)
  assert metrics["hit_rate@5"] == pytest.approx(0.4)
  assert metrics["hit_rate@10"] == pytest.approx(0.6)
  assert metrics["hit_rate@50"] == pytest.approx(0.8)
  assert metrics["ndcg@10"] == pytest.approx(
      (1.0 + 1 / np.log2(5) + 1 / np.log2(11)) / 5)
