"""The two-stage bench's table: its rows from a run's figures, and each
target stated met or missed with the figure it was judged on."""
import pytest

from components.model.export import signature_names as names
from components.user_modules.evaluation import REPORTED_METRICS
from pipeline.bench import two_stage
from pipeline.config import load_config
from pipeline.dag import nodes


def _result(ndcg_gain, latency_ratio):
  def metrics(hr10, ndcg):
    return {**{m: 0.1 for m in REPORTED_METRICS}, "hit_rate@10": hr10,
            "ndcg@10": ndcg}
  return {
      "date": "2026-12-06", "machine": "m", "data_dir": "d",
      "model": "attention:quality", "context_length": 200,
      "candidates": 100, "bench_minutes": 47.0,
      "retrieval": metrics(0.30, 0.18),
      "two_stages": metrics(0.32, 0.18 + ndcg_gain),
      "retrieval_file": metrics(0.30, 0.179),
      "two_stage_files": metrics(0.32, 0.179 + ndcg_gain),
      "most_popular": metrics(0.05, 0.02),
      "train_minutes": {nodes.RETRIEVAL.trainer: 20.0,
                        nodes.CANDIDATE_TRAINER: 20.5,
                        nodes.CANDIDATE_GEN: 0.5, nodes.RANKER.trainer: 0.4},
      "retrieval_bytes": 900_000, "ranker_bytes": 214_520,
      "latency": {"two_stage_invoke_ratio": latency_ratio,
                  "two_stage_end_to_end_ratio": latency_ratio + 0.2,
                  "two_stage_invoke_reference_ratio": 0.9},
  }


def test_the_table_has_both_stages_as_models_and_as_files():
  table = two_stage.markdown(_result(0.02, 1.1))
  rows = [line for line in table.splitlines() if line.startswith("| ")]
  assert [r.split(" | ")[0] for r in rows] == [
      "| model", "| retrieval alone (SavedModel, TFMA)",
      "| two stages (SavedModels, TFMA)", "| retrieval model.tflite",
      "| two stages, both .tflite files", "| most popular"]
  assert "| 20.0 + 20.5 + 0.5 + 0.4 |" in rows[2]
  assert "| 900,000 + 214,520 | 1.10 |" in rows[4]
  assert "both files 0.90x the reference workload" in table
  assert all(line.endswith("met (target " + line.split("(target ")[1])
             for line in two_stage.targets(_result(0.02, 1.1)))


def test_a_missed_target_says_so_with_its_figure():
  lines = two_stage.targets(_result(0.004, 1.7))
  assert lines[0] == ("- NDCG@10 gain +0.0040 (files +0.0040): missed "
                      "(target >= +0.015)")
  assert lines[1] == "- HR@10 gain +0.0200: met (target >= +0.01)"
  assert lines[2] == "- ranker file 214,520 bytes: met (target <= 300,000)"
  assert lines[3] == "- both invoke()s 1.70x retrieval's: missed (target <= 1.5x)"
  assert lines[4] == "- end to end 1.90x retrieval's: missed (target <= 1.5x)"


def test_run_reads_the_figures_of_one_pipeline_run(tmp_path, monkeypatch):
  def metrics(hr10):
    return {**{m: 0.1 for m in REPORTED_METRICS}, "hit_rate@10": hr10,
            "example_count": 2999.0}
  config = load_config(values={"ranker": {"enabled": True}})
  summary = {
      "config": config, "pushed": str(tmp_path / "serving" / "17"),
      "metrics": {names.SCORES: metrics(0.30),
                  names.POPULARITY_SCORES: metrics(0.04)},
      "tflite": {"overall": metrics(0.30), "tflite_bytes": 900},
      "ranker": {"pushed": str(tmp_path / "serving" / "ranker" / "18"),
                 "metrics": {names.SCORES: metrics(0.32)},
                 "tflite": {"overall": metrics(0.31), "tflite_bytes": 300},
                 "training": {"seconds": 30.0, "history": {"loss": [1.0]}}},
      "components": [{"name": name, "seconds": 60.0} for name in (
          nodes.RETRIEVAL.trainer, nodes.CANDIDATE_TRAINER,
          nodes.CANDIDATE_GEN, nodes.RANKER.trainer)],
  }
  ran, timed = [], []
  monkeypatch.setattr(two_stage, "run_model", lambda *args, **kwargs: (
      ran.append((args, kwargs)) or summary))
  monkeypatch.setattr(two_stage, "latency", lambda root, queries: (
      timed.append(root) or {"two_stage_invoke_ratio": 1.2}))
  result = two_stage.run("data", str(tmp_path), queries=10)
  assert ran == [(("data", str(tmp_path), "attention", "quality"),
                  {"ranker": True})]
  assert timed == [str(tmp_path / "serving")]
  assert result["retrieval"]["hit_rate@10"] == 0.30
  assert result["two_stages"]["hit_rate@10"] == 0.32
  assert result["two_stage_files"]["hit_rate@10"] == 0.31
  assert "history" not in result["ranker_training"]
  assert result["train_minutes"][nodes.CANDIDATE_TRAINER] == 1.0
  assert (tmp_path / two_stage.TABLE).read_text() == two_stage.markdown(
      result)
  # Measured again: the latency alone changes, and the table says when.
  monkeypatch.setattr(two_stage, "latency", lambda root, queries: (
      timed.append(root) or {"two_stage_invoke_ratio": 1.1}))
  again = two_stage.remeasure(str(tmp_path), queries=10)
  assert timed[-1] == str(tmp_path / "serving")
  assert again["two_stages"] == result["two_stages"]
  table = (tmp_path / two_stage.TABLE).read_text()
  assert "| 1.10 |" in table and "latency measured" in table
  # A ranker that was not pushed stops the bench with the reason.
  summary["ranker"] = {"not_pushed_reason": "the retrieval model it follows "
                       "was not pushed (x)", "blessing_reason": "passed"}
  with pytest.raises(RuntimeError, match="follows was not pushed"):
    two_stage.run("data", str(tmp_path), queries=10)
