"""`recsys bench`: the pipeline once per context encoder, one results table.

Each encoder runs the whole pipeline with its tuned config
(pipeline/bench/configs/<encoder>.yaml) in one output directory, so ingestion,
statistics and validation run once and are reused from the cache. Quality
comes from the pipeline's own TFMA evaluation (test split, PROTOCOL.md),
training time and throughput from the Trainer's training_summary.json, size
and latency from the pushed TFLite file (tf.lite.Interpreter, one thread).
"""
import datetime
import json
import os
import statistics
import time
from typing import Any, Dict, List, Sequence

from components.lib.feature_config import SEQUENCE_ENCODERS
from components.model.export import signature_names as names
from components.user_modules.evaluation import REPORTED_METRICS
from pipeline.config import load_config
from pipeline.bench import latency
from pipeline.bench.machine import machine
from pipeline.runners import local

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "configs")


LATENCY_PROCESSES = 5


def tflite_facts(version_dir: str, queries: int,
                 processes: int = LATENCY_PROCESSES) -> Dict[str, Any]:
  """Size and latency of a pushed model.tflite (its quantization is the
  run's serving.quantization, its quality the file's evaluation).

  Latency is measured by `recsys latency` in fresh processes, as an app
  would run the model: timed inside the bench process, which holds a whole
  pipeline run, the same model measured up to twice as slow. On a shared VM
  one process's median still moves by up to 1.7x between runs, so the
  figure is the median over `processes` processes (each its own random
  histories); their medians are kept to show the spread.
  """
  runs = latency.in_fresh_processes(version_dir, queries, processes)
  return {"tflite_bytes": runs[0]["bytes"],
          "latency_median_ms": statistics.median(
              r["end_to_end_median_ms"] for r in runs),
          "latency_p90_ms": statistics.median(
              r["end_to_end_p90_ms"] for r in runs),
          "latency_process_medians_ms": [r["end_to_end_median_ms"]
                                         for r in runs]}


def remeasure(output_dir: str, queries: int = 1000) -> Dict[str, Any]:
  """Measures the TFLite facts of the table's pushed models again (same
  models, e.g. after a change to how latency is measured)."""
  with open(os.path.join(output_dir, "bench.json")) as f:
    result = json.load(f)
  for row in result["rows"]:
    print(f"[bench] measuring {row['encoder']}", flush=True)
    row.update(tflite_facts(row["pushed"], queries))
  write(output_dir, result)
  return result


def write(output_dir: str, result: Dict[str, Any]) -> None:
  """bench.json and bench.md of a result."""
  with open(os.path.join(output_dir, "bench.json"), "w") as f:
    json.dump(result, f, indent=2)
  with open(os.path.join(output_dir, "bench.md"), "w") as f:
    f.write(markdown(result))


def previous_result(output_dir: str, data_dir: str) -> Dict[str, Any]:
  """The table an earlier bench wrote in output_dir for the same data, if any."""
  try:
    with open(os.path.join(output_dir, "bench.json")) as f:
      result = json.load(f)
  except FileNotFoundError:
    return {}
  return result if result.get("data_dir") == data_dir else {}


def merge(previous: Dict[str, Any], rows: List[Dict[str, Any]],
          minutes: float, baseline: Dict[str, float],
          data_dir: str) -> Dict[str, Any]:
  """This run's rows replace the previous table's rows of the same encoders;
  the other rows stay, so one encoder can be (re)run into an existing table.
  The bench time is the sum over the runs the table comes from."""
  ran = {r["encoder"] for r in rows}
  kept = [r for r in previous.get("rows", []) if r["encoder"] not in ran]
  order = {name: i for i, name in enumerate(SEQUENCE_ENCODERS)}
  return {
      "date": datetime.date.today().isoformat(), "machine": machine(),
      "data_dir": data_dir,
      "bench_minutes": previous.get("bench_minutes", 0.0) + minutes,
      "rows": sorted(kept + rows, key=lambda r: order[r["encoder"]]),
      "most_popular": {m: baseline.get(m) for m in REPORTED_METRICS},
  }


def run_bench(data_dir: str, output_dir: str, encoders: Sequence[str],
              queries: int = 1000) -> Dict[str, Any]:
  started = time.monotonic()
  previous = previous_result(output_dir, data_dir)
  rows: List[Dict[str, Any]] = []
  baseline: Dict[str, float] = {}
  for encoder in encoders:
    print(f"[bench] {encoder}", flush=True)
    config = load_config(
        os.path.join(CONFIGS_DIR, f"{encoder}.yaml"),
        values={"data": {"data_dir": data_dir}, "output_dir": output_dir,
                "push_dir": os.path.join(output_dir, "serving", encoder)})
    summary = local.run(config, quiet=True)
    if not summary.get("pushed"):
      raise RuntimeError(f"{encoder}: the model was not blessed and pushed")
    metrics = summary["metrics"]
    baseline = metrics[names.POPULARITY_SCORES]
    training = summary["training"]
    rows.append({
        "encoder": encoder,
        **{m: metrics[names.SCORES][m] for m in REPORTED_METRICS},
        "train_minutes": training["seconds"] / 60.0,
        "epochs": training["epochs"],
        "train_predictions_per_second": training["train_predictions_per_second"],
        **tflite_facts(summary["pushed"], queries),
        "context_length": config.session.max_context_length,
        "pushed": summary["pushed"],
    })
    print(f"[bench] {encoder}: HR@10 {rows[-1]['hit_rate@10']:.4f}, NDCG@10 "
          f"{rows[-1]['ndcg@10']:.4f}, {rows[-1]['train_minutes']:.1f} min "
          "of training", flush=True)
    # Written after every encoder, so a long bench keeps what it measured.
    result = merge(previous, rows, (time.monotonic() - started) / 60,
                   baseline, data_dir)
    write(output_dir, result)
  return result


def _spread(row: Dict[str, Any]) -> str:
  runs = row.get("latency_process_medians_ms") or [row["latency_median_ms"]]
  return f"{min(runs):.3f}-{max(runs):.3f}"


def markdown(result: Dict[str, Any]) -> str:
  head = ("| model | HR@1 | HR@5 | HR@10 | HR@50 | NDCG@10 | train min | "
          "epochs | predictions/s | TFLite bytes | latency ms "
          "(range) |")
  lines = [f"{result['date']}, {result['machine']}; "
           f"test split of {result['data_dir']} under PROTOCOL.md; "
           f"the whole bench took {result['bench_minutes']:.0f} min", "",
           head, "|" + "---|" * 11]
  for r in result["rows"]:
    lines.append(
        f"| {r['encoder']} (L={r['context_length']}) | "
        + " | ".join(f"{r[m]:.4f}" for m in REPORTED_METRICS)
        + f" | {r['train_minutes']:.1f} | {r['epochs']} | "
        f"{r['train_predictions_per_second']:,.0f} | "
        f"{r['tflite_bytes']:,} | "
        f"{r['latency_median_ms']:.3f} ({_spread(r)}) |")
  popular = result["most_popular"]
  lines.append("| most popular | " + " | ".join(
      f"{popular[m]:.4f}" for m in REPORTED_METRICS) + " | – | – | – | – | – |")
  return "\n".join(lines) + "\n"
