"""The whole pipeline on the embedded Ali-CCP sample (data/aliccp-sample):
raw files -> join -> click sessions -> model -> TFMA -> TFLite push (the
run is tests/conftest.py's `aliccp_run`)."""
import glob
import json
import os

import tensorflow as tf

from components.lib import features as F
from components.lib import layout
from components.lib import session_data as D
from components.model.export import signature_names as names
from components.model.export import tflite
from pipeline.results import report
from tests.support.pipeline_runs import assert_same_top


def _report(config, component, artifact, name):
  (path,) = glob.glob(os.path.join(config.pipeline_root, component, artifact,
                                   "*", name))
  with open(path) as f:
    return json.load(f)


def test_ingestion_and_sessions_count_every_row(aliccp_run):
  config, summary = aliccp_run
  assert "AliCCPExampleGen" in [c["name"] for c in summary["components"]]
  ingested = _report(config, "AliCCPExampleGen", "examples",
                     layout.INGESTION_REPORT)
  impressions = 0
  for path in ingested["files"]:
    if "sample_skeleton" in path:
      with open(path) as f:
        impressions += sum(1 for _ in f)
  dropped = ingested["inconsistent_click_conversion"]
  assert dropped > 0  # the generator writes a few, as the real data has
  assert ingested["examples"] == impressions - dropped
  sessions = _report(config, "Sessionize", "sessions", layout.SESSIONIZE_REPORT)
  clicks = ingested["examples"] - sessions["impressions_not_clicked"]
  assert 0 < clicks < ingested["examples"] / 5
  assert sessions["train_interactions"] + 2 * sessions["users"] + sessions[
      "short_user_interactions_dropped"] == clicks


def test_model_beats_most_popular_and_is_pushed(aliccp_run):
  _, summary = aliccp_run
  model = summary["metrics"][names.SCORES]
  popular = summary["metrics"][names.POPULARITY_SCORES]
  assert model["example_count"] == popular["example_count"] > 100
  assert model["hit_rate@10"] > popular["hit_rate@10"]
  assert summary["blessed"] and summary["pushed"]


def test_pushed_tflite_model_takes_ali_ccp_histories(aliccp_run):
  _, summary = aliccp_run
  pushed = summary["pushed"]
  with open(os.path.join(pushed, layout.BUNDLE_METADATA)) as f:
    inputs = json.load(f)["inputs"]
  # Vocabulary indices; input_mapping.json maps the raw Ali-CCP ids.
  for name, _ in D.ALICCP_ITEM:
    assert inputs[name]["dtype"] == "int32"
  assert "user_gender" in inputs
  with open(os.path.join(pushed, layout.CATALOG)) as f:
    catalog = json.load(f)
  history = sorted(catalog)[:4]
  features = {}
  for item in history:
    for name, value in D.ALICCP_DATA.item_features(catalog[item]).items():
      features.setdefault(name, []).append(value)
  recommender = tflite.TFLiteRecommender(os.path.join(pushed, layout.TFLITE_MODEL))
  ids, scores = recommender.recommend(history, features)
  assert not set(ids) & set(history) and set(ids) <= set(catalog)
  # The SavedModel's serving signature agrees.
  serve = tf.saved_model.load(os.path.join(pushed, layout.BUNDLE_SAVED_MODEL)).signatures[
      "serving_default"]
  length = recommender.context_length
  given = {F.CONTEXT_ITEM_ID: history, **features}
  args = {}
  for name, spec in serve.structured_input_signature[1].items():
    values = given.get(name, [])
    args[name] = tf.constant([list(values) + [""] * (spec.shape[-1] - len(
        values))], tf.string)
    assert spec.shape[-1] in (1, length)
  saved = serve(**args)
  # The pushed file has float16 weights (serving.quantization).
  assert_same_top(ids, scores, [i.decode() for i in saved[
      names.TOP_ITEM_IDS].numpy()[0][:10]],
                  saved[names.TOP_SCORES].numpy()[0][:10])


def test_the_tuner_searched_and_the_trainer_used_the_best(aliccp_run):
  """Two trials (tuner.trials): the settings as given first, then a random
  draw; the Trainer trained with the better one's values."""
  config, summary = aliccp_run
  assert ["Tuner", "Trainer"] == [c["name"] for c in summary["components"]
                                  if c["name"] in ("Tuner", "Trainer")]
  tuning = report.facts(config)["tuning"]
  trials = tuning["trials"]
  assert len(trials) == 2
  assert trials[0]["score"] >= trials[1]["score"] > 0
  (given,) = [t for t in trials if t["trial_id"] == "0"]
  assert given["learning_rate"] == config.train.learning_rate
  assert given["context_length"] == config.session.max_context_length
  best = tuning["best"]
  assert best == {k: v for k, v in trials[0].items()
                  if k not in ("trial_id", "score")}
  settings = _report(config, "Trainer", "model", layout.MODEL_SETTINGS)
  assert settings["train"]["learning_rate"] == best["learning_rate"]
  assert settings["model"]["dropout"] == best["dropout"]
  assert settings["features"]["label"]["embedding_dim"] == best[
      "embedding_dim"]
  text = report.format_text(report.facts(config))
  assert "Tuning (TFX Tuner: 2 trials, eval NDCG@10; the Trainer used the " \
         "best)" in text
