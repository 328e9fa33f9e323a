"""The bench table: a later run adds or replaces its encoders' rows."""
import json
import os

from components.lib import layout
from components.model.export import signature_names as names
from components.user_modules.evaluation import REPORTED_METRICS
from pipeline.bench import encoders as bench


def row(encoder, hr):
  return {"encoder": encoder, "hit_rate@10": hr}


def test_a_later_run_replaces_its_rows_and_keeps_the_others(tmp_path):
  first = bench.merge({}, [row("attention", 0.3), row("bow", 0.1)], 60.0,
                      {"hit_rate@10": 0.04}, "d")
  assert [r["encoder"] for r in first["rows"]] == ["bow", "attention"]
  (tmp_path / "bench.json").write_text(json.dumps(first))

  previous = bench.previous_result(str(tmp_path), "d")
  second = bench.merge(previous, [row("lstm", 0.25), row("bow", 0.2)], 25.0,
                       {"hit_rate@10": 0.04}, "d")
  assert [(r["encoder"], r["hit_rate@10"]) for r in second["rows"]] == [
      ("bow", 0.2), ("lstm", 0.25), ("attention", 0.3)]
  assert second["bench_minutes"] == 85.0
  # A table of other data is not merged into.
  assert bench.previous_result(str(tmp_path), "other") == {}
  assert bench.previous_result(str(tmp_path / "none"), "d") == {}


def test_table_shows_the_median_latency_and_the_spread_over_processes():
  full = {**{m: 0.1 for m in REPORTED_METRICS}, "encoder": "gru",
          "context_length": 50, "train_minutes": 20.0, "epochs": 30,
          "train_predictions_per_second": 13000.0, "tflite_bytes": 1_366_896,
          "latency_median_ms": 0.55,
          "latency_process_medians_ms": [0.61, 0.52, 0.55, 0.9, 0.54]}
  table = bench.markdown({"date": "2026-11-23", "machine": "m",
                          "data_dir": "d", "bench_minutes": 100.0,
                          "rows": [full], "most_popular": {
                              m: 0.01 for m in REPORTED_METRICS}})
  assert "| 1,366,896 | 0.550 (0.520-0.900) |" in table


def test_bench_facts_and_table_of_a_pushed_model(sample_runs):
  first = sample_runs.first
  facts = bench.tflite_facts(first["pushed"], queries=20, processes=2)
  assert facts["tflite_bytes"] == os.path.getsize(
      os.path.join(first["pushed"], layout.TFLITE_MODEL))
  assert 0 < facts["latency_median_ms"] <= facts["latency_p90_ms"]
  runs_ms = facts["latency_process_medians_ms"]
  assert len(runs_ms) == 2
  assert min(runs_ms) <= facts["latency_median_ms"] <= max(runs_ms)
  row = {"encoder": "attention", "context_length": 50, "train_minutes": 1.0,
         "epochs": 3, "train_predictions_per_second": 1234.5,
         **{m: 0.1 for m in REPORTED_METRICS}, **facts}
  table = bench.markdown({"date": "2026-11-23", "machine": "m", "data_dir": "d",
                          "bench_minutes": 61.0,
                          "rows": [row], "most_popular": first["metrics"][
                              names.POPULARITY_SCORES]})
  lines = table.strip().splitlines()
  assert lines[0].endswith("the whole bench took 61 min")
  assert lines[-2].startswith("| attention (L=50) | 0.1000 |")
  assert lines[-1].startswith(
      f"| most popular | {first['metrics'][names.POPULARITY_SCORES]['hit_rate@1']:.4f}")


