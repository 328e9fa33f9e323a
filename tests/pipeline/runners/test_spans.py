"""Data that arrives in spans, as a scheduled pipeline meets it: the sample
cut by time into three span directories, run with the first two, then again
when the third has arrived, in one output directory."""
import glob
import json
import os

import pytest
import tensorflow as tf

from components.example_gen import executor as base_executor
from components.lib import features as F
from components.lib import layout
from components.sessionize import sessions as sessionization
from components.sessionize.anomalies import DataValidationError
from pipeline.config import load_config
from pipeline.results import outputs
from pipeline.results import report as run_report
from pipeline.results import runs
from pipeline.runners import local
from pipeline.runners import replay
from tests.support.pipeline_runs import SAMPLE


def _write_spans(root, count: int):
  """The sample's ratings cut by timestamp into `count` spans of equal size;
  movies and users in the first and the last span only."""
  with open(os.path.join(SAMPLE, "ratings.dat"), "rb") as f:
    ratings = sorted(f.read().splitlines(),
                     key=lambda line: int(line.split(b"::")[3]))
  size = -(-len(ratings) // count)
  directories = []
  for span in range(1, count + 1):
    directory = root / f"span-{span:02d}"
    directory.mkdir(parents=True)
    part = ratings[(span - 1) * size:span * size]
    (directory / "ratings.dat").write_bytes(b"\n".join(part) + b"\n")
    directories.append(directory)
  for name in ("movies.dat", "users.dat"):
    with open(os.path.join(SAMPLE, name), "rb") as f:
      catalog = f.read()
    for directory in (directories[0], directories[-1]):
      (directory / name).write_bytes(catalog)
  return directories, len(ratings)


def _sessionized(summary):
  with open(os.path.join(summary["sessions"], "sessionize_report.json")) as f:
    return json.load(f)


@pytest.mark.e2e
def test_a_new_span_is_ingested_alone_and_sessions_span_every_period(
    tmp_path):
  arrived = tmp_path / "data"
  everything = tmp_path / "all"
  directories, ratings = _write_spans(everything, 3)
  arrived.mkdir()
  for directory in directories[:2]:
    os.rename(directory, arrived / directory.name)
  # One epoch: the mechanics are tested, not the model, which is blessed
  # whatever its HR@10 (the forward evaluation takes a blessed model).
  config = load_config(values={"data": {"data_dir": str(arrived)},
                               "output_dir": str(tmp_path / "out"),
                               "train": {"epochs": 1},
                               "eval": {"min_hit_rate_at_10": 0.0},
                               "ranker": {"enabled": False},
                               "ranker": {"enabled": False}, "ranking": {"enabled": False}})

  first = local.run(config)
  os.rename(directories[2], arrived / directories[2].name)
  second = local.run(config)

  # The first run ingested span 1 alone, then span 2 in the pipeline; the
  # second found both in the cache and read span 3 only.
  rows = runs.list_runs(config)
  assert [r["status"] for r in rows] == [
      "ingested span 1", "complete", "ingested span 1", "ingested span 2",
      "complete"]
  # ExampleGen and StatisticsGen of spans 1 and 2, from the cache.
  assert [r["cached"] for r in rows[2:4]] == [2, 2]
  assert rows[0]["encoder"] is None and rows[1]["encoder"] == "attention"
  ingested = {c["name"]: c["cached"] for c in second["components"]}
  assert ingested["MovieLensExampleGen"] is False
  examples = _last_run_examples(config)
  with open(os.path.join(examples.uri, layout.INGESTION_REPORT)) as f:
    report = json.load(f)
  assert report["span"] == 3
  assert report["files"][0] == str(arrived / "span-03" / "ratings.dat")
  assert examples.custom_properties[
      base_executor.DATA_DIR_PROPERTY].string_value == str(arrived)
  # Every rating of the three spans is in the sessions: each user's timeline
  # runs across the periods (no user of the sample is short).
  sessions = _sessionized(second)
  assert sessions["short_users_dropped"] == 0
  assert (sessions["train_interactions"] + sessions["eval_examples"]
          + sessions["test_examples"]) == ratings
  assert _sessionized(first)["train_interactions"] < sessions[
      "train_interactions"]
  # Forward evaluation: the first run's model (trained through span 2) on
  # each user's first interaction in span 3, beside most-popular.
  assert first["forward"]["status"] == "no model was blessed before span 2"
  forward = second["forward"]
  assert forward["status"] == "evaluated", forward
  assert (forward["span"], forward["model_trained_through_span"]) == (3, 2)
  assert forward["examples"] == sessions["forward_examples"] > 0
  assert forward["model_uri"] == first["model"]
  # No forward target was a train label (or context) of the model it
  # evaluated: those came from spans 1 and 2 only.
  forward_pairs = _pairs(second["sessions"], "forward", own_items=False)
  assert len(forward_pairs) == forward["examples"]
  assert not forward_pairs & _pairs(first["sessions"], "train")
  metrics = forward["metrics"]
  assert metrics["scores"]["example_count"] == forward["examples"]
  assert 0 < metrics["popularity_scores"]["hit_rate@10"] < 1
  assert runs.list_runs(config)[-1]["forward_hit_rate@10"] == (
      metrics["scores"]["hit_rate@10"])
  # The second run's Trainer started from the first run's model, every
  # item of its vocabulary carried over (the window grew: none left; the
  # first two spans already hold all 757 items of the sample).
  assert "warm_start" not in first["training"]
  started = second["training"]["warm_start"]
  assert started["base_model"] == first["model"], started
  assert started["vocabularies"]["item_id"] == {
      "carried_over": 757, "new": 0, "left_out": 0}
  assert second["training"]["trained_through_span"] == 3
  # The replay's row of this run (pipeline/runners/replay.py).
  found = replay.row(replay.Span(3, str(arrived / "span-03"), 100, 0, 0, 0),
                     second)
  assert (found["users"], found["warm_start"], found["epochs"]) == (
      600, True, 1)
  assert found["forward_hit_rate@10"] == metrics["scores"]["hit_rate@10"]
  assert found["executed"] + found["cached"] == len(second["components"])
  assert set(found["drift"]) == {"item_genres", "rating"}
  assert found["ingestion_seconds"] > 0 and found["stopped"] is None
  # The report shows the drift distances and the forward table.
  text = run_report.format_text(run_report.facts(config))
  assert "drift from the previous span (DistributionValidator): item_genres" in (
      text)
  assert f"Forward evaluation on span 3 ({forward['examples']} users'" in text

  # Run again with nothing new: the Trainer starts from the same imported
  # model, a cache hit; the latest blessed model now is the second run's,
  # trained on span 3, so nothing is evaluated forward.
  third = local.run(config)
  ran = {c["name"]: c["cached"] for c in third["components"]}
  assert "base_model" in ran and ran["Trainer"], ran
  assert third["forward"]["status"] == (
      "the latest blessed model was trained on spans up to 3: span 3 is not "
      "ahead of it")


def _pairs(sessions_uri, split, own_items=True):
  """(user, item) of a split's labels, and with `own_items` of its
  examples' own context items (train windows)."""
  files = glob.glob(os.path.join(sessions_uri, f"Split-{split}", "*.gz"))
  found = set()
  for record in tf.data.TFRecordDataset(
      files, compression_type="GZIP").as_numpy_iterator():
    example = tf.train.Example.FromString(record)
    user = example.features.feature[F.USER_ID].bytes_list.value[0]
    items = (sessionization.own_items(example) if own_items else list(
        example.features.feature[F.LABEL_ITEM_ID].bytes_list.value))
    found |= {(user, item) for item in items}
  return found


def _last_run_examples(config):
  """The Examples artifact the last run's ExampleGen wrote (MLMD)."""
  store, found = outputs.pipeline_runs(config)
  return outputs.run_outputs(store, found[-1][1])["MovieLensExampleGen"][
      "examples"]


@pytest.mark.e2e
def test_a_span_that_drifted_stops_the_run_until_accepted(tmp_path):
  """The sample cut in two by time, the second half without its Crime
  movies (about a tenth of the genre values): DistributionValidator finds
  item_genres beyond the curated schema's bound, and the run stops before
  sessionizing, naming the feature, its distance and the bound;
  data.accept_drift lets it through."""
  data = tmp_path / "data"
  (first, second), _ = _write_spans(data, 2)
  with open(os.path.join(SAMPLE, "movies.dat"), "rb") as f:
    crime = {line.split(b"::")[0] for line in f.read().splitlines()
             if b"Crime" in line.split(b"::")[2]}
  kept = [line for line in (second / "ratings.dat").read_bytes().splitlines()
          if line.split(b"::")[1] not in crime]
  (second / "ratings.dat").write_bytes(b"\n".join(kept) + b"\n")
  values = {"data": {"data_dir": str(data)},
            "output_dir": str(tmp_path / "out"), "train": {"epochs": 1},
            "ranker": {"enabled": False}, "ranking": {"enabled": False}}

  with pytest.raises(DataValidationError) as raised:
    local.run(load_config(values=values))
  message = str(raised.value)
  assert "feature 'item_genres'" in message, message
  assert "above the threshold 0.05" in message, message
  assert "data.accept_drift=true" in message, message
  assert not (tmp_path / "out" / "pipeline_root" / "Trainer").exists()

  values["data"]["accept_drift"] = True
  accepted = local.run(load_config(values=values))
  assert _sessionized(accepted)["users"] > 0
