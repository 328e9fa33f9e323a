"""The bench table: a later run adds or replaces its encoders' rows."""
import json

from pipeline import bench


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
