"""The on-device bench: Pareto marks, the table, and a sample model's files
converted, evaluated through the interpreter and timed."""
import os

import pytest

from components.lib import layout
from pipeline.bench import ondevice


def _row(encoder, quantization, size, ratio, hit_rate):
  return {"encoder": encoder, "profile": "ondevice", "context_length": 50,
          "quantization": quantization, "bytes": size, "invoke_ratio": ratio,
          "hit_rate@10": hit_rate, "ndcg@10": hit_rate / 2,
          "end_to_end_median_ms": 0.5, "invoke_median_ms": 0.3,
          "saved_model_hit_rate@10": 0.3, "train_minutes": 10.0}


def test_pareto_marks_rows_no_other_row_beats_everywhere():
  rows = [_row("a", "none", 500, 1.0, 0.30),     # best HR@10
          _row("a", "float16", 300, 1.0, 0.30),  # as good, smaller: beats it
          _row("b", "none", 100, 0.3, 0.20),     # smallest, fastest
          _row("c", "none", 400, 1.2, 0.25),     # beaten by the float16 row
          {**_row("a", "int8", 0, 0, 0), "error": "no int8"}]
  assert ondevice.pareto(rows) == [False, True, True, False, False]
  table = ondevice.markdown({"date": "2026-12-05", "machine": "m",
                             "data_dir": "d", "rows": rows,
                             "bench_minutes": 3.0})
  assert "| a | ondevice (50) | float16 * | 300 | 1.00 | 0.500 (0.300) | " \
         "0.3000 | 0.1500 | 0.3000 | 10.0 |" in table
  assert "| a | ondevice (50) | none | 500 |" in table
  assert "not converted [1]" in table and "[1] a, ondevice, int8: no int8" in (
      table)


def test_file_rows_of_a_sample_model(sample_runs, tmp_path, monkeypatch):
  monkeypatch.setattr(ondevice, "LATENCY_PROCESSES", 1)
  first = sample_runs.first
  rows = ondevice.file_rows(first, str(tmp_path), ["none", "float16"],
                            queries=20)
  assert [r["quantization"] for r in rows] == ["none", "float16"]
  none, float16 = rows
  assert float16["bytes"] < 0.7 * none["bytes"]
  # The float32 file ranks as the SavedModel does (its pushed evaluation).
  assert none["hit_rate@10"] == pytest.approx(
      first["metrics"]["scores"]["hit_rate@10"], abs=0.002)
  for row in rows:
    assert row["invoke_ratio"] > 0
    assert row["end_to_end_median_ms"] >= row["invoke_median_ms"] > 0
    assert os.path.exists(tmp_path / row["quantization"] / layout.TFLITE_MODEL)
