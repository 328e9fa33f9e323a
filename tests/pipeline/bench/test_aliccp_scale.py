"""The scale bench's measurement: peak memory of a job's whole process tree."""
import sys

import pytest

from pipeline.bench import aliccp_scale as scale_bench


def test_peak_memory_counts_the_jobs_child_processes(tmp_path):
  # The job starts a child that holds 300 MB; the job itself prints its JSON.
  child = ("import time; block = bytearray(300 * 2**20); "
           "block[::4096] = b'x' * len(block[::4096]); time.sleep(1.5)")
  job = ("import json, subprocess, sys; "
         f"subprocess.run([sys.executable, '-c', {child!r}], check=True); "
         "print(json.dumps({'seconds': 1.0}))")
  measured = scale_bench.run_measured([sys.executable, "-c", job],
                                      str(tmp_path / "job.log"))
  assert measured["seconds"] == 1.0
  assert measured["peak_memory_bytes"] > 300 * 2**20
  assert measured["wall_seconds"] >= 1.5


def test_table_reports_rows_per_second_and_memory():
  table = scale_bench.markdown({
      "date": "2026-11-23", "machine": "2 cores", "group_bucket_bytes": 2**25,
      "rows": [{
      "job": "ingest", "impressions": 1_000_000, "input_bytes": 170 * 2**20,
      "workers": 2, "seconds": 100.0, "rows_per_second": 10_000.0,
      "peak_memory_bytes": 1536 * 2**20}]})
  assert "| ingest | 1,000,000 | 170 | 2 | 100 | 10,000 | 1,536 |" in table
  assert table.startswith("2026-11-23, 2 cores; ") and "32 MiB" in table


def test_an_impression_neither_written_nor_reported_fails_the_bench():
  scale_bench.check_accounted(1000, {"examples": 990, "dropped": 10})
  with pytest.raises(RuntimeError, match="accounted for 989 of 1,000"):
    scale_bench.check_accounted(1000, {"examples": 989, "dropped": 0})
