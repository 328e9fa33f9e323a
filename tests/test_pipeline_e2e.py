"""The whole pipeline on LocalDagRunner: the embedded sample, end to end.

One full run and one identical re-run (which must be served from the cache),
plus one run on bad data that ExampleValidator must stop before training.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from components import features as F
from components import serving
from components import tflite
from components.anomalies import DataValidationError
from pipeline import runner
from pipeline.config import load_config

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sample")
COMPONENTS = ["ImportSchemaGen", "MovieLensExampleGen", "StatisticsGen",
              "ExampleValidator", "Sessionize", "Transform", "Trainer",
              "Evaluator", "TFLitePusher"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  output = tmp_path_factory.mktemp("e2e")
  config = load_config(values={"data": {"data_dir": SAMPLE},
                               "output_dir": str(output),
                               "train": {"epochs": 4}})
  first = runner.run(config)
  second = runner.run(config)
  return config, first, second


def test_every_component_ran_then_was_cached(runs):
  _, first, second = runs
  assert sorted(c["name"] for c in first["components"]) == sorted(COMPONENTS)
  assert not any(c["cached"] for c in first["components"])
  assert sorted(c["name"] for c in second["components"]) == sorted(COMPONENTS)
  assert all(c["cached"] for c in second["components"]), second["components"]


def test_model_beats_most_popular_under_the_protocol(runs):
  _, first, _ = runs
  model = first["metrics"][serving.SCORES]
  popular = first["metrics"][serving.POPULARITY_SCORES]
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


def test_pushed_bundle_is_complete_and_versioned(runs):
  config, first, second = runs
  pushed = first["pushed"]
  assert pushed and os.path.dirname(pushed) == config.serving_dir
  # The cached re-run pushed nothing new.
  assert os.listdir(config.serving_dir) == [os.path.basename(pushed)]
  assert sorted(os.listdir(pushed)) == ["items.json", "metadata.json",
                                        "model.tflite", "saved_model"]
  with open(os.path.join(pushed, "metadata.json")) as f:
    metadata = json.load(f)
  assert metadata["version"] == int(os.path.basename(pushed))
  assert metadata["top_k"] == config.serving.top_k
  assert metadata["metrics"]["model"] == first["metrics"][serving.SCORES]
  assert metadata["inputs"][F.CONTEXT_ITEM_ID] == {
      "dtype": "string", "shape": [-1, config.session.max_context_length]}
  assert metadata["outputs"][serving.TOP_ITEM_IDS]["dtype"] == "string"
  assert metadata["tflite_bytes"] == os.path.getsize(
      os.path.join(pushed, "model.tflite"))
  assert metadata["config"] == json.loads(config.to_json())
  with open(os.path.join(config.output_dir, runner.RUN_CONFIG_FILE)) as f:
    assert json.load(f) == json.loads(config.to_json())


def _test_contexts(config, limit=60):
  """Raw contexts of test-split session examples, as an app would hold them."""
  (sessions_dir,) = [
      os.path.join(config.pipeline_root, "Sessionize", "sessions", d)
      for d in os.listdir(os.path.join(config.pipeline_root, "Sessionize",
                                       "sessions"))]
  pattern = os.path.join(sessions_dir, "Split-test", "*")
  contexts = []
  for record in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern),
                                        compression_type="GZIP").take(limit):
    feature = tf.train.Example.FromString(record.numpy()).features.feature
    contexts.append({
        "items": [v.decode() for v in feature[F.CONTEXT_ITEM_ID].bytes_list.value],
        "ratings": list(feature[F.CONTEXT_RATING].float_list.value),
        "years": list(feature[F.CONTEXT_YEAR].int64_list.value),
        "genres": [v.decode() for v in feature[F.CONTEXT_GENRE].bytes_list.value],
    })
  return contexts


def test_tflite_top_10_matches_saved_model(runs):
  config, first, _ = runs
  pushed = first["pushed"]
  loaded = tf.saved_model.load(os.path.join(pushed, "saved_model"))
  recommender = tflite.TFLiteRecommender(os.path.join(pushed, "model.tflite"))
  length = config.session.max_context_length
  genres_length = config.session.max_context_genres
  contexts = _test_contexts(config)
  assert len(contexts) == 60

  def pad(values, n, fill):
    return list(values)[-n:] + [fill] * (n - len(values[-n:]))

  saved = loaded.signatures["serving_default"](
      context_item_id=tf.constant([pad(c["items"], length, "") for c in contexts]),
      context_rating=tf.constant([pad(c["ratings"], length, 0.0)
                                  for c in contexts], tf.float32),
      context_genre=tf.constant([pad(c["genres"], genres_length, "")
                                 for c in contexts]),
      context_year=tf.constant([pad(c["years"], length, 0) for c in contexts],
                               tf.int32))
  for i, context in enumerate(contexts):
    # The session's genres are already flattened; hand them to the last item.
    genres = [[] for _ in context["items"]]
    if genres:
      genres[-1] = context["genres"]
    ids, scores = recommender.recommend(context["items"], context["ratings"],
                                        genres, context["years"])
    want = [v.decode() for v in saved[serving.TOP_ITEM_IDS].numpy()[i][:10]]
    assert ids[:10] == want
    np.testing.assert_allclose(scores[:10],
                               saved[serving.TOP_SCORES].numpy()[i][:10],
                               rtol=1e-4, atol=1e-4)
    assert not set(ids) & set(context["items"])


def test_anomalies_stop_the_run_before_training(tmp_path):
  data = tmp_path / "data"
  shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("ratings.dat"))
  with open(os.path.join(SAMPLE, "ratings.dat"), encoding="latin-1") as f:
    lines = f.readlines()[:3000]
  user, item, _, stamp = lines[10].strip().split("::")
  lines[10] = f"{user}::{item}::9::{stamp}\n"  # ratings go up to 5
  (data / "ratings.dat").write_text("".join(lines), encoding="latin-1")
  config = load_config(values={"data": {"data_dir": str(data)},
                               "output_dir": str(tmp_path / "out")})
  with pytest.raises(DataValidationError, match="'rating'"):
    runner.run(config)
  assert not os.path.exists(os.path.join(config.pipeline_root, "Trainer"))
  assert not os.path.exists(config.serving_dir)


def test_recommend_and_latency_commands_use_the_pushed_model(runs):
  config, first, _ = runs
  with open(os.path.join(first["pushed"], "items.json"), encoding="utf-8") as f:
    catalog = json.load(f)
  history = sorted(catalog, key=int)[:3]
  recsys = [sys.executable, "-m", "pipeline.cli"]
  result = subprocess.run(
      recsys + ["recommend", "--model", config.serving_dir, "--history",
                ",".join(history), "--top", "5"],
      capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
  lines = result.stdout.strip().splitlines()
  assert lines[0] == f"model {first['pushed']}"
  ranked = [line.split() for line in lines[1:]]
  assert [r[0] for r in ranked] == ["1.", "2.", "3.", "4.", "5."]
  for row in ranked:
    assert row[1] in catalog and row[1] not in history
    assert " ".join(row[3:]) == catalog[row[1]]["title"]
  result = subprocess.run(
      recsys + ["latency", "--model", first["pushed"], "--queries", "50"],
      capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)
  assert "1 thread(s), 50 queries" in result.stdout
  assert "median" in result.stdout
