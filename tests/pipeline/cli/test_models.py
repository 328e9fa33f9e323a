"""`recsys recommend` and `recsys latency` on the sample run's pushed
models, the way an app calls them (one model, retrieval followed by the
next-item ranker, or retrieval re-ordered by the rating model)."""
import json
import os
import re
import subprocess
import sys

import numpy as np

from components.lib import features as F
from components.lib import layout
from components.lib.session_data import session_data
from components.model.export import tflite
from pipeline import PROJECT_ROOT
from pipeline.cli import main as cli


def test_recommend_and_latency_commands_use_the_pushed_model(sample_runs):
  config, first = sample_runs.config, sample_runs.first
  with open(os.path.join(first["pushed"], layout.CATALOG), encoding="utf-8") as f:
    catalog = json.load(f)
  history = sorted(catalog, key=int)[:3]
  recsys = [sys.executable, "-m", "pipeline.cli"]
  result = subprocess.run(
      recsys + ["recommend", "--model", config.serving_dir, "--history",
                ",".join(history), "--top", "5"],
      capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120, check=True)
  lines = result.stdout.strip().splitlines()
  assert lines[0] == f"model {first['pushed']}"
  ranked = [line.split() for line in lines[1:]]
  assert [r[0] for r in ranked] == ["1.", "2.", "3.", "4.", "5."]
  for row in ranked:
    assert row[1] in catalog and row[1] not in history
    assert " ".join(row[3:]) == catalog[row[1]]["title"]
  result = subprocess.run(
      recsys + ["latency", "--model", first["pushed"], "--queries", "50"],
      capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120, check=True)
  assert "1 thread(s), 50 queries" in result.stdout
  assert "  invoke(): median " in result.stdout
  assert "  end to end (recommend): median " in result.stdout
  # ../shared is beside the project in CI and here.
  assert re.search(r"invoke\(\) \d+\.\d\dx the reference", result.stdout), (
      result.stdout)


def test_recommend_rated_reorders_by_the_rating_model(sample_runs, capsys):
  config, first = sample_runs.config, sample_runs.first
  assert cli.main(["recommend", "--model", config.serving_dir, "--history",
                   "1,2,3", "--ratings", "5,4,1", "--rated", "--top",
                   "8"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert lines[0] == f"model {first['pushed']}"
  assert lines[1].startswith(f"rating model {first['ranking']['pushed']}: "
                             f"the top {config.serving.top_k} re-ordered")
  rows = [line.split() for line in lines[2:]]
  assert len(rows) == 8
  ratings = [float(r[3]) for r in rows]
  assert ratings == sorted(ratings, reverse=True)
  # The same ratings as the pushed rating model gives those candidates.
  rater = tflite.TFLiteRater(os.path.join(first["ranking"]["pushed"],
                                          layout.TFLITE_MODEL))
  recommender = tflite.TFLiteRecommender(os.path.join(first["pushed"],
                                                      layout.TFLITE_MODEL))
  with open(os.path.join(first["pushed"], layout.CATALOG),
            encoding="utf-8") as f:
    catalog = json.load(f)
  features = {F.CONTEXT_RATING: [5.0, 4.0, 1.0]}
  for item in ("1", "2", "3"):  # what the command fills in from the catalog
    for name, value in session_data(config.data.dataset).item_features(
        catalog.get(item, {})).items():
      features.setdefault(name, []).append(value)
  ids, _ = recommender.recommend(["1", "2", "3"], features)
  predicted = rater.rate(["1", "2", "3"], ids, [5.0, 4.0, 1.0])
  best = int(np.argmax(predicted))
  assert rows[0][1] == ids[best]
  assert rows[0][4:6] == ["(retrieval", f"#{best + 1})"]


def test_two_stage_commands_chain_the_ranker_after_its_retrieval_model(
    sample_runs, capsys):
  config, first = sample_runs.config, sample_runs.first
  ranker = first["ranker"]["pushed"]
  history = ["1", "2", "3", "4", "5"]
  assert cli.main(["recommend", "--model", config.serving_dir, "--history",
                   ",".join(history), "--two-stage", "--top", "5"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  # The retrieval version the ranker's metadata names.
  assert lines[0] == f"model {first['pushed']}"
  assert lines[1] == (f"ranker {ranker}: retrieval's best "
                      f"{config.ranker.candidates} re-ordered")
  rows = [line.split() for line in lines[2:]]
  two_stages = tflite.TwoStageRecommender(
      tflite.TFLiteRecommender(os.path.join(first["pushed"],
                                            layout.TFLITE_MODEL)),
      tflite.TFLiteRanker(os.path.join(ranker, layout.TFLITE_MODEL)))
  with open(os.path.join(first["pushed"], layout.CATALOG),
            encoding="utf-8") as f:
    catalog = json.load(f)
  features = {}
  for item in history:  # what the command fills in from the catalog
    for name, value in session_data(config.data.dataset).item_features(
        catalog.get(item, {})).items():
      features.setdefault(name, []).append(value)
  ids, scores, places = two_stages.recommend(history, {
      k: v for k, v in features.items() if k in two_stages.retrieval.inputs})
  assert [r[1] for r in rows] == ids[:5]
  assert [float(r[2]) for r in rows] == [round(float(s), 3) for s in scores[:5]]
  assert [r[3:5] for r in rows] == [["(retrieval", f"#{p + 1})"]
                                    for p in places[:5]]
  assert not set(ids) & set(history)
  # Both stages timed against retrieval alone and the reference.
  assert cli.main(["latency", "--model", config.serving_dir, "--two-stage",
                   "--queries", "30"]) == 0
  out = capsys.readouterr().out
  assert f"ranker {os.path.join(ranker, layout.TFLITE_MODEL)} (" in out
  assert re.search(r"two stages over retrieval alone: invoke\(\) \d+\.\d\dx, "
                   r"end to end \d+\.\d\dx", out), out
  assert re.search(r"both invoke\(\)s \d+\.\d\dx", out), out
