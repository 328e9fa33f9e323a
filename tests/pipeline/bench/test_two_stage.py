"""The two-stage bench's table: its rows from a run's figures, and each
target stated met or missed with the figure it was judged on."""
from components.user_modules.evaluation import REPORTED_METRICS
from pipeline.bench import two_stage
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
                  "two_stage_invoke_reference_ratio": 0.9},
  }


def test_the_table_has_both_stages_as_models_and_as_files():
  table = two_stage.markdown(_result(0.02, 1.2))
  rows = [line for line in table.splitlines() if line.startswith("| ")]
  assert [r.split(" | ")[0] for r in rows] == [
      "| model", "| retrieval alone (SavedModel, TFMA)",
      "| two stages (SavedModels, TFMA)", "| retrieval model.tflite",
      "| two stages, both .tflite files", "| most popular"]
  assert "| 20.0 + 20.5 + 0.5 + 0.4 |" in rows[2]
  assert "| 900,000 + 214,520 | 1.20 |" in rows[4]
  assert "both files 0.90x the reference workload" in table
  assert all(line.endswith("met (target " + line.split("(target ")[1])
             for line in two_stage.targets(_result(0.02, 1.2)))


def test_a_missed_target_says_so_with_its_figure():
  lines = two_stage.targets(_result(0.004, 1.7))
  assert lines[0] == ("- NDCG@10 gain +0.0040 (files +0.0040): missed "
                      "(target >= +0.015)")
  assert lines[1] == "- HR@10 gain +0.0200: met (target >= +0.01)"
  assert lines[2] == "- ranker file 214,520 bytes: met (target <= 300,000)"
  assert lines[3] == "- both invoke()s 1.70x retrieval's: missed (target <= 1.5x)"
