"""The DAG: what a setting changes (TFX's cache key of each node, from the
compiled pipeline), and what the whole pipeline produces on the embedded
sample (the model beats most-popular under the protocol, complete pushed
bundles, the TFLite file agreeing with the SavedModel, the rating model and
the two-stage evaluation)."""
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tfx.dsl.compiler import compiler
from tfx.proto.orchestration import pipeline_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components.lib import features as F
from components.lib import layout
from components.lib import slices
from components.model.export import signature_names as names
from components.model.export import tflite
from components.tflite_pusher import executor as pusher
from components.user_modules import evaluation
from components.user_modules.trainer import TrainerSettings
from pipeline.config import load_config
from pipeline.dag.pipeline import create_pipeline
from pipeline.results import report
from pipeline.results import runs as pipeline_runs
from tests.support.pipeline_runs import (SAMPLE, assert_same_top,
                                         split_examples, split_records,
                                         split_records_dir)

# --- What a setting re-runs -------------------------------------------------


def _cache_keys(overrides, tmp_path):
  """{node id: what TFX's cache key holds of the node (its parameters and
  executor spec)} and {node id: its upstream nodes}, from the compiled
  pipeline of the sample's config with `overrides`."""
  config = load_config(overrides=overrides, values={
      "data": {"data_dir": SAMPLE}, "output_dir": str(tmp_path)})
  ir = compiler.Compiler().compile(create_pipeline(config.with_data_features()))
  deployment = pipeline_pb2.IntermediateDeploymentConfig()
  ir.deployment_config.Unpack(deployment)
  keys, upstream = {}, {}
  for node in ir.nodes:
    node = node.pipeline_node
    name = node.node_info.id
    spec = deployment.executor_specs.get(name)
    keys[name] = (node.parameters.SerializeToString(deterministic=True),
                  spec.SerializeToString(deterministic=True) if spec else b"")
    upstream[name] = set(node.upstream_nodes)
  return keys, upstream


def rerun_by(overrides, tmp_path):
  """The nodes a change of the default config re-runs: those whose cache
  key changes, and everything downstream of them (new input artifacts)."""
  base, upstream = _cache_keys([], tmp_path)
  changed, _ = _cache_keys(overrides, tmp_path)
  assert changed.keys() == base.keys()
  rerun = {name for name in base if base[name] != changed[name]}
  grown = True
  while grown:
    after = rerun | {name for name, parents in upstream.items()
                     if parents & rerun}
    grown, rerun = after != rerun, after
  return rerun


# The next-item ranker follows the retrieval model: its candidate model has
# the retrieval model's settings.
RANKER_STAGE = {"candidate_trainer", "candidate_gen", "ranker_trainer",
                "ranker_evaluator", "ranker_pusher"}
RETRIEVAL_STAGE = {"Trainer", "Evaluator", "TFLitePusher",
                   "two_stage_evaluator"} | RANKER_STAGE
RANKING_STAGE = {"rating_trainer", "rating_evaluator", "rating_pusher",
                 "two_stage_evaluator"}
# The forward evaluation reads the sessions and the latest blessed model.
AFTER_SESSIONIZE = {"Sessionize", "Transform", "forward_evaluator"} | (
    RETRIEVAL_STAGE | RANKING_STAGE)


@pytest.mark.parametrize("override, rerun", [
    # No step reads the orchestration settings.
    ("runner=beam", set()),
    ("name=recsys", set()),
    ("metadata.backend=mysql", set()),
    ("train.epochs=3", RETRIEVAL_STAGE),
    ("model.encoder=gru", RETRIEVAL_STAGE),
    ("train.seed=7", RETRIEVAL_STAGE | RANKING_STAGE),
    ("ranking.epochs=3", RANKING_STAGE),
    ("serving.top_k=20", RETRIEVAL_STAGE | RANKING_STAGE),
    ("eval.min_hit_rate_at_10=0.1", {"Evaluator", "TFLitePusher",
                                     "ranker_pusher"}),
    ("ranking.max_rmse_increase=0.5", {"rating_evaluator", "rating_pusher"}),
    # The push bound of the TFLite files: the Pushers read it, no Trainer.
    ("serving.max_tflite_drop=0.02", {"TFLitePusher", "ranker_pusher"}),
    ("ranking.two_stage_candidates=10,20", {"two_stage_evaluator"}),
    # Transform reads the vocabulary caps of the model section, not the rest.
    ("model.vocabulary_min_count=2",
     AFTER_SESSIONIZE - {"Sessionize", "forward_evaluator"}),
    # Sessionize reads the slice settings of the eval section.
    ("eval.history_length_edges=5,50", AFTER_SESSIONIZE),
    ("session.max_context_length=20", AFTER_SESSIONIZE),
    ("data.max_malformed_lines=3", {"MovieLensExampleGen", "StatisticsGen",
                                    "ExampleValidator"} | AFTER_SESSIONIZE),
])
def test_a_setting_re_runs_only_the_steps_that_read_it(override, rerun,
                                                       tmp_path):
  # The resolvers always run, whatever changed.
  assert rerun_by([override], tmp_path) - {
      "latest_blessed_model", "latest_blessed_rating_model"} == rerun


@pytest.mark.parametrize("override, rerun", [
    ("ranker.epochs=3", {"ranker_trainer", "ranker_evaluator",
                         "ranker_pusher"}),
    ("ranker.min_ndcg_gain=0.01", {"ranker_evaluator", "ranker_pusher"}),
    ("ranker.candidates=50", {"candidate_gen", "ranker_trainer",
                              "ranker_evaluator", "ranker_pusher"}),
    # The retrieval model's settings are the candidate model's too.
    ("train.epochs=3", RETRIEVAL_STAGE | RANKER_STAGE),
    # Which train interactions are the ranker's labels: Sessionize on.
    ("session.ranker_labels_per_user=5",
     AFTER_SESSIONIZE | RANKER_STAGE),
])
def test_the_ranker_stage_re_runs_on_its_settings(override, rerun, tmp_path):
  assert rerun_by([override], tmp_path) - {
      "latest_blessed_model", "latest_blessed_rating_model"} == rerun


def test_the_ranker_stage_follows_the_leakage_rule(tmp_path):
  config = load_config(values={
      "data": {"data_dir": SAMPLE}, "output_dir": str(tmp_path)})
  nodes = {n.id: n for n in create_pipeline(
      config.with_data_features()).components}
  assert RANKER_STAGE <= set(nodes)
  candidate, trainer = nodes["candidate_trainer"], nodes["Trainer"]
  # The candidate model: retrieval's settings, without the ranker's labels.
  held_out = json.loads(candidate.exec_properties["custom_config"])
  assert held_out["hold_out_ranker_labels"] is True
  assert "hold_out_ranker_labels" not in json.loads(
      trainer.exec_properties["custom_config"])
  gen = nodes["candidate_gen"]
  assert gen.inputs["holdout_model"].producer_component_id == (
      "candidate_trainer")
  assert gen.inputs["model"].producer_component_id == "Trainer"
  ranker = nodes["ranker_trainer"]
  assert ranker.inputs["base_model"].producer_component_id == "Trainer"
  assert ranker.inputs["examples"].producer_component_id == "candidate_gen"
  assert json.loads(ranker.exec_properties["train_args"])["splits"] == [
      F.RANKER_TRAIN]
  evaluator = nodes["ranker_evaluator"]
  assert evaluator.inputs["baseline_model"].producer_component_id == (
      "Trainer")
  assert json.loads(evaluator.exec_properties["example_splits"]) == [F.TEST]
  # Pushed beside the retrieval version it follows, its file chained to it.
  pusher = nodes["ranker_pusher"]
  assert pusher.inputs["retrieval_push"].producer_component_id == (
      "TFLitePusher")
  assert pusher.inputs["model"].producer_component_id == "ranker_trainer"
  assert pusher.inputs["model_blessing"].producer_component_id == (
      "ranker_evaluator")


def test_the_tuner_feeds_the_trainer_its_best_hyperparameters(tmp_path):
  _, upstream = _cache_keys([], tmp_path)
  assert "Tuner" not in upstream
  keys, upstream = _cache_keys(["tuner.enabled=true"], tmp_path)
  assert upstream["Tuner"] == {"Transform"}
  assert upstream["Trainer"] == {"Transform", "Tuner"}
  # The Tuner's own settings are in its key, not in the Trainer's.
  changed, _ = _cache_keys(["tuner.enabled=true", "tuner.trials=3"], tmp_path)
  assert {name for name in keys if keys[name] != changed[name]} == {"Tuner"}


def test_beam_args_are_in_the_cache_key_of_the_beam_steps(tmp_path):
  """TFX keys a Beam step's cache on its executor spec, which holds the
  Beam arguments: another worker count re-runs ingestion and everything
  after it (by TFX's design); no step's parameters change."""
  base, _ = _cache_keys([], tmp_path)
  changed, _ = _cache_keys(["beam_args=--direct_num_workers=2"], tmp_path)
  assert {name for name in base if base[name][0] != changed[name][0]} == set()
  assert {name for name in base if base[name][1] != changed[name][1]} == {
      "MovieLensExampleGen", "StatisticsGen", "Sessionize", "Transform",
      "Evaluator", "rating_evaluator", "forward_evaluator", "ranker_evaluator"}


# --- The pipeline on the sample -----------------------------------------------


def test_model_beats_most_popular_under_the_protocol(sample_runs):
  first = sample_runs.first
  model = first["metrics"][names.SCORES]
  popular = first["metrics"][names.POPULARITY_SCORES]
  for metrics in (model, popular):
    assert set(metrics) == {"hit_rate@1", "hit_rate@5", "hit_rate@10",
                            "hit_rate@50", "ndcg@10", "example_count"}
    # One test example per sample user (600 users, all with >= 3 ratings).
    assert metrics["example_count"] == 600
    assert metrics["hit_rate@1"] <= metrics["hit_rate@5"] <= metrics[
        "hit_rate@10"] <= metrics["hit_rate@50"]
  assert model["hit_rate@10"] > 2 * popular["hit_rate@10"]
  assert model["ndcg@10"] > 2 * popular["ndcg@10"]
  assert first["blessed"]


def test_pushed_bundle_is_complete_and_versioned(sample_runs):
  config, first, second = (sample_runs.config, sample_runs.first,
                           sample_runs.second)
  pushed = first["pushed"]
  assert pushed and os.path.dirname(pushed) == config.serving_dir
  # The re-run's model is the one already pushed: no second version.
  assert second["pushed"] == pushed
  assert sorted(os.listdir(config.serving_dir)) == [
      os.path.basename(pushed), layout.RANKER_DIR, layout.RANKING_DIR]
  assert sorted(os.listdir(pushed)) == sorted([
      layout.CATALOG, layout.BUNDLE_METADATA, layout.TFLITE_MODEL,
      layout.INPUT_MAPPING, layout.BUNDLE_SAVED_MODEL])
  with open(os.path.join(pushed, layout.BUNDLE_METADATA)) as f:
    metadata = json.load(f)
  assert metadata["version"] == int(os.path.basename(pushed))
  assert metadata["top_k"] == config.serving.top_k
  assert metadata["metrics"]["model"] == first["metrics"][names.SCORES]
  assert metadata["model_uri"] == first["model"]
  assert metadata["blessing"] == {
      "reason": report.facts(config, pipeline_runs.list_runs(config)[0][
          "run"])["blessing"]["reason"], "baseline_model": None}
  # Vocabulary indices at a batch of one (input_mapping.json maps raw ids).
  assert metadata["inputs"][F.CONTEXT_ITEM_ID] == {
      "dtype": "int32", "shape": [1, config.session.max_context_length]}
  assert metadata["inputs"][F.CONTEXT_GENRE]["shape"] == [
      1, config.session.max_context_length * config.session.max_item_genres]
  # The sample has users: the optional user group is in, recorded inline.
  assert F.USER_GENDER in metadata["inputs"]
  assert metadata["outputs"][names.TOP_ITEM_INDICES]["dtype"] == "int32"
  # The file's own test metrics, within serving.max_tflite_drop of TFMA's.
  tflite_metrics = metadata["tflite_evaluation"]["overall"]
  assert tflite_metrics == first["tflite"]["overall"]
  assert metadata["tflite_evaluation"]["users"] == 600
  assert tflite_metrics["hit_rate@10"] >= (
      first["metrics"][names.SCORES]["hit_rate@10"]
      - config.serving.max_tflite_drop)
  assert set(metadata["tflite_evaluation"]["slices"]) == set(slices.FEATURES)
  assert metadata["tflite_bytes"] == os.path.getsize(
      os.path.join(pushed, layout.TFLITE_MODEL))
  # The settings the model's Trainer received, and the catalog's data set.
  assert metadata["config"] == json.loads(first["config"].step_settings(
      TrainerSettings).to_json())
  assert metadata["dataset"] == "movielens"


def test_tflite_top_10_matches_saved_model(sample_runs):
  config, first = sample_runs.config, sample_runs.first
  pushed = first["pushed"]
  loaded = tf.saved_model.load(os.path.join(pushed, layout.BUNDLE_SAVED_MODEL))
  serve = loaded.signatures["serving_default"]
  recommender = tflite.TFLiteRecommender(os.path.join(pushed, layout.TFLITE_MODEL))
  slots = config.session.max_item_genres
  examples = split_examples(config)
  assert len(examples) == 60
  for example in examples:
    # The SavedModel gets the session example's own values, padded.
    inputs = {}
    for name, spec in serve.structured_input_signature[1].items():
      values = example.get(name, [])
      width = spec.shape[-1]
      fill = "" if spec.dtype == tf.string else 0
      inputs[name] = tf.constant([values + [fill] * (width - len(values))],
                                 spec.dtype)
    saved = serve(**inputs)
    # The TFLite model gets them the way an app holds them.
    items = example[F.CONTEXT_ITEM_ID]
    genres = example[F.CONTEXT_GENRE]
    ids, scores = recommender.recommend(
        items, {F.CONTEXT_RATING: example[F.CONTEXT_RATING],
                F.CONTEXT_GENRE: [[g for g in genres[i * slots:(i + 1) * slots]
                                   if g] for i in range(len(items))],
                F.CONTEXT_YEAR: example[F.CONTEXT_YEAR]},
        user={name: example[name][0] for name in F.USER_FEATURES
              if name in example})
    want = [v.decode() for v in saved[names.TOP_ITEM_IDS].numpy()[0][:10]]
    # The pushed file has float16 weights (serving.quantization).
    assert_same_top(ids, scores, want, saved[names.TOP_SCORES].numpy()[0][:10])
    assert not set(ids) & set(items)


def _broken_conversion(model_uri: str, target: str) -> str:
  """A copy of the Model artifact whose model.tflite is converted from the
  on-device SavedModel with its item embeddings shuffled: a file that runs
  and has the right signature, but ranks badly."""
  shutil.copytree(model_uri, target)
  tflite_dir = os.path.join(target, layout.TFLITE_DIR)
  loaded = tf.saved_model.load(os.path.join(tflite_dir,
                                            layout.ONDEVICE_SAVED_MODEL))
  with open(os.path.join(tflite_dir, layout.INPUT_MAPPING)) as f:
    items = len(json.load(f)["vocabularies"]["item_id"]) + 2
  (embedding,) = [v for v in loaded.signatures[names.ONDEVICE].variables
                  if v.shape[0] == items]
  embedding.assign(tf.random.shuffle(embedding, seed=0))
  broken = os.path.join(target, "broken_saved_model")
  tf.saved_model.save(loaded, broken, signatures=loaded.signatures)
  with open(os.path.join(tflite_dir, layout.TFLITE_MODEL), "wb") as f:
    f.write(tflite.convert(broken, names.ONDEVICE))
  return target


def test_a_broken_conversion_is_evaluated_and_not_pushed(sample_runs,
                                                         tmp_path):
  config, first = sample_runs.config, sample_runs.first
  model = standard_artifacts.Model()
  model.uri = _broken_conversion(first["model"], str(tmp_path / "model"))
  blessing = standard_artifacts.ModelBlessing()
  blessing.set_int_custom_property("blessed", 1)
  result = standard_artifacts.ModelEvaluation()
  result.uri = first["evaluation"]
  sessions = standard_artifacts.Examples()
  sessions.uri = os.path.dirname(split_records_dir(config))
  sessions.split_names = artifact_utils.encode_split_names(list(F.SPLITS))
  output = standard_artifacts.PushedModel()
  output.uri = str(tmp_path / "pushed")
  versions = sorted(os.listdir(config.serving_dir))
  pusher.Executor().Do(
      {"model": [model], "model_blessing": [blessing], "evaluation": [result],
       "examples": [sessions]}, {"pushed_model": [output]},
      {pusher.PUSH_DIR: config.serving_dir,
       pusher.MAX_TFLITE_DROP: config.serving.max_tflite_drop})
  found = pusher.read_tflite_evaluation(output.uri)
  saved_model = first["metrics"][names.SCORES]["hit_rate@10"]
  assert found["users"] == 600
  assert found["overall"]["hit_rate@10"] < (
      saved_model - config.serving.max_tflite_drop)
  assert output.get_int_custom_property("pushed") == 0
  reason = output.get_string_custom_property("not_pushed_reason")
  assert f"{found['overall']['hit_rate@10']:.4f}" in reason
  assert f"SavedModel's {saved_model:.4f}" in reason
  assert sorted(os.listdir(config.serving_dir)) == versions


def test_rating_model_beats_both_baselines_and_is_pushed(sample_runs):
  config, first, second = (sample_runs.config, sample_runs.first,
                           sample_runs.second)
  ranking = first["ranking"]
  metrics = ranking["metrics"]
  model = metrics[names.RATING]
  item_mean = metrics[names.ITEM_MEAN_RATING]
  global_mean = metrics[names.GLOBAL_MEAN_RATING]
  assert model["example_count"] == 600  # the retrieval stage's test users
  assert model["rmse"] < item_mean["rmse"] and model["rmse"] < global_mean[
      "rmse"]
  assert model[evaluation.RMSE_GAIN] == pytest.approx(
      item_mean["rmse"] - model["rmse"], abs=1e-6)
  # TFMA's RMSE and MAE, recomputed from the pushed SavedModel's outputs.
  pushed = ranking["pushed"]
  assert os.path.dirname(pushed) == config.ranking_serving_dir
  loaded = tf.saved_model.load(os.path.join(pushed, layout.BUNDLE_SAVED_MODEL))
  predicted, labels = [], []
  for batch in split_records(config).batch(128):
    predicted.append(loaded.signatures["evaluate"](examples=batch)[
        names.RATING].numpy())
    labels.append([tf.train.Example.FromString(r).features.feature[
        F.LABEL_RATING].float_list.value[0] for r in batch.numpy()])
  errors = np.concatenate(predicted) - np.concatenate(labels)
  assert model["rmse"] == pytest.approx(np.sqrt(np.mean(errors ** 2)),
                                        rel=1e-4)
  assert model["mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-4)
  assert model["mean_squared_error"] == pytest.approx(model["rmse"] ** 2,
                                                      rel=1e-4)
  assert ranking["blessed"] and ranking["blessing_reason"].startswith(
      "passed: rmse_gain_over_item_mean")
  with open(os.path.join(pushed, layout.BUNDLE_METADATA)) as f:
    metadata = json.load(f)
  assert metadata["metrics"]["model"] == model
  assert metadata["metrics"]["item_mean"] == item_mean
  assert metadata["inputs"][names.CANDIDATE_ITEM_ID] == {
      "dtype": "string", "shape": [-1, config.serving.top_k]}
  assert metadata["outputs"][names.RATINGS]["dtype"] == "float32"
  # The re-run compares with the first rating model (itself): not re-pushed.
  assert second["ranking"]["pushed"] == pushed
  assert os.listdir(config.ranking_serving_dir) == [os.path.basename(pushed)]
  assert "rmse change vs baseline +0.0000 <= +0.0100" in second["ranking"][
      "blessing_reason"]


def test_two_stage_evaluation_beside_retrieval_alone(sample_runs):
  config, first = sample_runs.config, sample_runs.first
  found = first["two_stage"]
  assert found["users"] == 600
  # Retrieval alone, ranked by this component, is what TFMA measured.
  tfma_metrics = first["metrics"][names.SCORES]
  for name, value in found["retrieval"].items():
    assert value == pytest.approx(tfma_metrics[name], abs=1e-9), name
  assert sorted(found["two_stage"], key=int) == [
      str(n) for n in config.ranking.two_stage_candidates]
  # Re-ordering the top 10 keeps its hits; a larger N can only let more in
  # than the top 10 had or push them out, never beyond N.
  top10 = found["two_stage"]["10"]
  assert top10["hit_rate@10"] == pytest.approx(
      found["retrieval"]["hit_rate@10"])
  for metrics in found["two_stage"].values():
    assert metrics["hit_rate@1"] <= metrics["hit_rate@5"] <= metrics[
        "hit_rate@10"]


# The gain of two stages over retrieval alone on the test split.
MIN_NDCG_GAIN, MIN_HIT_RATE_GAIN = 0.015, 0.01


def test_the_ranker_beats_retrieval_alone_and_ships_chained(sample_runs):
  config, first, second = (sample_runs.config, sample_runs.first,
                           sample_runs.second)
  ranker = first["ranker"]
  chain = ranker["metrics"][names.SCORES]
  alone = first["metrics"][names.SCORES]
  assert chain["example_count"] == alone["example_count"] == 600
  assert chain["ndcg@10"] >= alone["ndcg@10"] + MIN_NDCG_GAIN, (chain, alone)
  assert chain["hit_rate@10"] >= alone["hit_rate@10"] + MIN_HIT_RATE_GAIN
  # Re-ordering retrieval's best 100 keeps the hits among them, and a
  # target beyond them keeps its retrieval rank: HR@100 cannot move.
  def curve(uri):
    return evaluation.read_sliced_metrics(uri)[()][evaluation.CANDIDATE][
        names.SCORES][evaluation.HIT_RATE_CURVE]
  assert curve(ranker["evaluation"])[99] == pytest.approx(
      curve(first["evaluation"])[99])
  assert ranker["blessed"] and ranker["blessing_reason"].startswith("passed")
  # Pushed beside the retrieval version it follows; the two files chained
  # as an app chains them hold TFMA's figures of the chain.
  pushed = ranker["pushed"]
  assert os.path.dirname(pushed) == config.ranker_serving_dir
  with open(os.path.join(pushed, layout.BUNDLE_METADATA)) as f:
    metadata = json.load(f)
  assert metadata["chain"]["retrieval_version"] == int(
      os.path.basename(first["pushed"]))
  assert metadata["chain"]["candidates"] == config.ranker.candidates
  assert metadata["chain"]["retrieval_tflite_evaluation"] == first["tflite"][
      "overall"]
  files = ranker["tflite"]["overall"]
  assert files == metadata["tflite_evaluation"]["overall"]
  assert files["hit_rate@10"] >= chain["hit_rate@10"] - (
      config.serving.max_tflite_drop)
  assert files["ndcg@10"] > first["tflite"]["overall"]["ndcg@10"]
  assert metadata["tflite_bytes"] <= 300_000
  assert metadata["inputs"][F.CANDIDATE_ITEM_INDEX] == {
      "dtype": "int32", "shape": [1, config.ranker.candidates]}
  # The re-run finds both models pushed already.
  assert second["ranker"]["pushed"] == pushed
  assert os.listdir(config.ranker_serving_dir) == [os.path.basename(pushed)]
