"""The whole pipeline on the embedded Ali-CCP sample (data/aliccp-sample):
raw files -> join -> click sessions -> model -> TFMA -> TFLite push."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components.lib import features as F
from components.lib import session_data as D
from components.lib import slices
from components.model.export import retrieval
from components.model.export import tflite
from pipeline import PROJECT_ROOT
from pipeline.config import load_config
from pipeline.results import report
from pipeline.runners import local as runner

pytestmark = pytest.mark.e2e

ROOT = PROJECT_ROOT
SAMPLE = os.path.join(ROOT, "data", "aliccp-sample")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  config = load_config(values={
      "data": {"dataset": "aliccp", "data_dir": SAMPLE,
               # Small buckets: the join and the grouping go through disk.
               "group_bucket_bytes": 1_000_000},
      # Eight epochs reach eval HR@10 0.15 (popularity: below 0.05).
      "train": {"epochs": 8},
      "output_dir": str(tmp_path_factory.mktemp("aliccp-e2e"))})
  return config, runner.run(config)


def _report(config, component, artifact, name):
  (path,) = glob.glob(os.path.join(config.pipeline_root, component, artifact,
                                   "*", name))
  with open(path) as f:
    return json.load(f)


def test_ingestion_and_sessions_count_every_row(run):
  config, summary = run
  assert "AliCCPExampleGen" in [c["name"] for c in summary["components"]]
  ingested = _report(config, "AliCCPExampleGen", "examples",
                     raw_example_gen.REPORT_FILE)
  impressions = 0
  for path in ingested["files"]:
    if "sample_skeleton" in path:
      with open(path) as f:
        impressions += sum(1 for _ in f)
  dropped = ingested["inconsistent_click_conversion"]
  assert dropped > 0  # the generator writes a few, as the real data has
  assert ingested["examples"] == impressions - dropped
  sessions = _report(config, "Sessionize", "sessions", sessionize.REPORT_FILE)
  clicks = ingested["examples"] - sessions["impressions_not_clicked"]
  assert 0 < clicks < ingested["examples"] / 5
  assert sessions["train_interactions"] + 2 * sessions["users"] + sessions[
      "short_user_interactions_dropped"] == clicks


def test_model_beats_most_popular_and_is_pushed(run):
  _, summary = run
  model = summary["metrics"][retrieval.SCORES]
  popular = summary["metrics"][retrieval.POPULARITY_SCORES]
  assert model["example_count"] == popular["example_count"] > 100
  assert model["hit_rate@10"] > popular["hit_rate@10"]
  assert summary["blessed"] and summary["pushed"]


def test_pushed_tflite_model_takes_ali_ccp_histories(run):
  _, summary = run
  pushed = summary["pushed"]
  with open(os.path.join(pushed, "metadata.json")) as f:
    inputs = json.load(f)["inputs"]
  for name, _ in D.ALICCP_ITEM:
    assert inputs[name]["dtype"] == "string"
  assert "user_gender" in inputs
  with open(os.path.join(pushed, "items.json")) as f:
    catalog = json.load(f)
  history = sorted(catalog)[:4]
  features = {}
  for item in history:
    for name, value in D.ALICCP_DATA.item_features(catalog[item]).items():
      features.setdefault(name, []).append(value)
  recommender = tflite.TFLiteRecommender(os.path.join(pushed, "model.tflite"))
  ids, scores = recommender.recommend(history, features)
  assert not set(ids) & set(history) and set(ids) <= set(catalog)
  # The SavedModel's serving signature agrees.
  serve = tf.saved_model.load(os.path.join(pushed, "saved_model")).signatures[
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
  assert ids[:10] == [i.decode() for i in
                      saved[retrieval.TOP_ITEM_IDS].numpy()[0][:10]]
  np.testing.assert_allclose(scores[:10],
                             saved[retrieval.TOP_SCORES].numpy()[0][:10],
                             rtol=1e-4, atol=1e-4)


def test_report_reads_the_aliccp_run(run):
  config, summary = run
  found = report.facts(config)
  # One raw split of impressions (both files); every user is in each of the
  # history and popularity slice sets.
  assert set(found["data"]["splits"]) == {"impressions"}
  users = found["sessions"]["users"]
  per_feature = {}
  for feature, _, roles in report.slice_rows(found):
    per_feature[feature] = per_feature.get(feature, 0) + int(report.count(roles))
  assert per_feature[slices.HISTORY_LENGTH] == users
  assert per_feature[slices.TARGET_POPULARITY] == users
  assert 0 < per_feature[slices.USER_GENDER] <= users
  text = report.format_text(found)
  assert "Blessing: blessed" in text and f"Pushed: {summary['pushed']}" in text
