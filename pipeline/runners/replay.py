"""`recsys replay`: a MovieLens data set cut by time into spans, and the
pipeline run once per span as a scheduler meets them, in one output
directory and MLMD store; one row per run.

The ratings are ordered by timestamp (ties in file order) and cut into K
spans of equal numbers of ratings; the movies and users files go into the
first span, which later spans fall back to (components/lib/spans.py). Run k
sees spans 1..k, exactly as a scheduled pipeline whose data directory grew:
it ingests span k alone, checks it for drift against span k-1, sessionizes
the window, evaluates the model pushed by run k-1 on span k (forward
evaluation) and trains, warm-started or not (train.warm_start). The settings
are those `recsys run` adapts to the whole data set, the same for every run,
as a scheduled pipeline's config is. A run that stops on bad data or drift
is a row with the reason; the next span's run goes on.

At the end every span is ingested once more into a fresh store: what
ingestion and statistics cost without the spans already in MLMD. The same
replay with train.warm_start=false in another directory gives the
from-scratch columns of the table (`markdown(warm, scratch)`).
"""
import dataclasses
import json
import os
import shutil
import time
from typing import Any, Dict, Iterator, List, Optional

from components.lib import layout
from components.lib import movielens_formats
from components.lib.errors import InputError
from pipeline.config import RunConfig, from_json
from pipeline.dag import nodes
from pipeline.results.runs import cell
from pipeline.runners import local

RESULT = "replay.json"
TABLE = "replay.md"
SPANS_DIR = "spans"  # every span, cut
ARRIVED_DIR = "data"  # the spans that have arrived: the pipeline's data_dir
INGESTION = ("MovieLensExampleGen", "StatisticsGen")


@dataclasses.dataclass(frozen=True)
class Span:
  number: int
  directory: str
  interactions: int
  new_items: int  # items no earlier span has
  first_timestamp: int
  last_timestamp: int


def cut(data_dir: str, count: int, out_dir: str, layout: str = "",
        encoding: str = "") -> List[Span]:
  """Writes `count` span directories of equal numbers of ratings, in time
  order, under `out_dir`; -> the spans."""
  files = movielens_formats.detect_files(data_dir, layout, encoding)
  fmt = files.format
  with open(files.ratings, "rb") as f:
    lines = f.read().splitlines()
  header = lines.pop(0) if fmt.header else None
  keyed = []
  for number, line in enumerate(lines, start=2 if header else 1):
    if not line.strip():
      continue
    try:
      rating = fmt.parse_rating(line.decode(fmt.encoding))
    except (ValueError, UnicodeDecodeError) as e:
      raise InputError(f"{files.ratings}:{number}: {e} (replay cuts clean "
                       f"data only: {line[:80]!r})") from e
    keyed.append((rating.timestamp, len(keyed), rating.item_id, line))
  if len(keyed) < count:
    raise InputError(f"{files.ratings} has {len(keyed)} ratings: too few for "
                     f"{count} spans")
  keyed.sort()
  width = len(str(count))
  spans, seen = [], set()
  for index in range(count):
    part = keyed[index * len(keyed) // count:(index + 1) * len(keyed) // count]
    directory = os.path.join(out_dir, f"span-{index + 1:0{width}d}")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, fmt.ratings_file), "wb") as f:
      f.write(b"\n".join(([header] if header else []) + [p[3] for p in part])
              + b"\n")
    if index == 0:
      for path in (files.movies, files.users):
        if path:
          shutil.copy(path, directory)
    items = {p[2] for p in part}
    spans.append(Span(index + 1, directory, len(part), len(items - seen),
                      part[0][0], part[-1][0]))
    seen |= items
  return spans


def _metric(summary: Dict[str, Any], *path) -> Optional[float]:
  value: Any = summary
  for key in path:
    if not isinstance(value, dict) or key not in value:
      return None
    value = value[key]
  return value


def _seconds(components: List[Dict[str, Any]], names) -> float:
  return sum(c["seconds"] for c in components if c["name"] in names)


def row(span: Span, summary: Dict[str, Any]) -> Dict[str, Any]:
  """One replay row from a run's summary (local.run)."""
  components = summary.get("components", [])
  training = summary.get("training", {})
  sessions = {}
  if summary.get("sessions"):
    with open(os.path.join(summary["sessions"], layout.SESSIONIZE_REPORT)) as f:
      sessions = json.load(f)
  forward = summary.get("forward") or {}
  pushed = summary.get("pushed")
  return {
      "span": span.number, "new_interactions": span.interactions,
      "new_items": span.new_items, "users": sessions.get("users"),
      "drift": summary.get("drift"),
      "executed": sum(not c["cached"] for c in components),
      "cached": sum(c["cached"] for c in components),
      "component_seconds": {c["name"]: round(c["seconds"], 1)
                            for c in components},
      "ingestion_seconds": _seconds(components, INGESTION) + sum(
          _seconds(b["components"], INGESTION)
          for b in summary.get("backfill", [])),
      "epochs": training.get("epochs"),
      "training_seconds": training.get("seconds"),
      "warm_start": "skipped" not in training.get("warm_start", {"skipped": 1}),
      "best_eval_ndcg@10": training.get("best_val_ndcg_at_10"),
      "hit_rate@10": _metric(summary, "metrics", "scores", "hit_rate@10"),
      "ndcg@10": _metric(summary, "metrics", "scores", "ndcg@10"),
      "forward_examples": forward.get("examples"),
      "forward_status": forward.get("status"),
      "forward_hit_rate@10": _metric(forward, "metrics", "scores",
                                     "hit_rate@10"),
      "forward_ndcg@10": _metric(forward, "metrics", "scores", "ndcg@10"),
      "forward_popular_hit_rate@10": _metric(
          forward, "metrics", "popularity_scores", "hit_rate@10"),
      "blessed": summary.get("blessed"),
      "pushed": os.path.basename(pushed) if pushed else None,
      "seconds": round(summary.get("seconds", 0.0), 1),
      "stopped": summary.get("stopped"),
  }


def replay(config: RunConfig, spans: List[Span], output_dir: str,
           quiet: bool = True) -> Iterator[Dict[str, Any]]:
  """Runs `config` once per span in `output_dir`, spans arriving one by
  one; yields each run's row as it ends."""
  arrived = os.path.join(output_dir, ARRIVED_DIR)
  os.makedirs(arrived, exist_ok=True)
  run_config = from_json(config.to_json())
  run_config.data.data_dir = arrived
  run_config.output_dir = os.path.join(output_dir, "pipeline")
  for span in spans:
    shutil.copytree(span.directory,
                    os.path.join(arrived, os.path.basename(span.directory)))
    print(f"[recsys] replay: span {span.number} of {len(spans)} arrived "
          f"({span.interactions} ratings)", flush=True)
    started = time.monotonic()
    try:
      summary = local.run(run_config, quiet=quiet)
    except InputError as e:  # bad data or drift: the run stops, as scheduled
      summary = {"stopped": str(e).splitlines()[0],
                 "seconds": time.monotonic() - started}
    found = row(span, summary)
    print(f"[recsys] replay: span {span.number}: " + format_row(found),
          flush=True)
    yield found


def ingestion_from_scratch(config: RunConfig, spans: List[Span],
                           output_dir: str) -> float:
  """Seconds that ExampleGen and StatisticsGen take over every span in a
  fresh store (each span ingested by its own run, as a first run backfills
  them)."""
  run_config = from_json(config.to_json())
  run_config.data.data_dir = os.path.dirname(spans[0].directory)
  run_config.output_dir = output_dir
  total = 0.0
  for span in spans:
    total += _seconds(local.ingest(run_config, span.number), INGESTION)
  return total


def run(config: RunConfig, data_dir: str, count: int,
        output_dir: str) -> Dict[str, Any]:
  """The whole replay (see the module docstring); writes RESULT and TABLE
  in `output_dir` and returns what they hold."""
  if os.path.exists(os.path.join(output_dir, SPANS_DIR)):
    raise InputError(f"{output_dir} holds a replay already: give another "
                     "--output-dir (a replay starts from an empty store)")
  spans = cut(data_dir, count, os.path.join(output_dir, SPANS_DIR),
              config.data.layout, config.data.encoding)
  result: Dict[str, Any] = {
      "data_dir": data_dir, "spans": [dataclasses.asdict(s) for s in spans],
      "config": config.to_dict(), "config_digest": config.digest(),
      "warm_start": config.train.warm_start}
  result["runs"] = []
  for found in replay(config, spans, output_dir):
    result["runs"].append(found)
    # The rows so far are kept, should a later run fail.
    with open(os.path.join(output_dir, RESULT), "w") as f:
      f.write(json.dumps(result, indent=2))
  result["ingestion_from_scratch_seconds"] = ingestion_from_scratch(
      config, spans, os.path.join(output_dir, "ingestion"))
  write(output_dir, result)
  return result


def write(output_dir: str, result: Dict[str, Any],
          scratch: Optional[Dict[str, Any]] = None) -> None:
  with open(os.path.join(output_dir, RESULT), "w") as f:
    f.write(json.dumps(result, indent=2))
  with open(os.path.join(output_dir, TABLE), "w") as f:
    f.write(markdown(result, scratch) + "\n")


def read(output_dir: str) -> Dict[str, Any]:
  with open(os.path.join(output_dir, RESULT)) as f:
    return json.load(f)


def format_row(r: Dict[str, Any]) -> str:
  """A run's row on one line (the console, as the replay goes)."""
  if r["stopped"]:
    return f"stopped: {r['stopped']}"
  return (f"{r['executed']} executed, {r['cached']} cached; "
          f"{r['epochs']} epochs in {cell(r['training_seconds'], 0)} s"
          f"{' (warm)' if r['warm_start'] else ''}; "
          f"HR@10 {cell(r['hit_rate@10'])}, forward HR@10 "
          f"{cell(r['forward_hit_rate@10'])} (most popular "
          f"{cell(r['forward_popular_hit_rate@10'])}); pushed "
          f"{cell(r['pushed'])}")


def _drift(drift: Optional[Dict[str, Dict[str, Any]]]) -> str:
  if not drift:
    return "-"
  return ", ".join(f"{feature} {d['distance']:.3f}"
                   for feature, d in sorted(drift.items()))


def markdown(result: Dict[str, Any],
             scratch: Optional[Dict[str, Any]] = None) -> str:
  """The replay table, with the from-scratch columns of `scratch` (the same
  replay with train.warm_start=false) when given."""
  by_span = {r["span"]: r for r in (scratch or {}).get("runs", [])}
  header = ["span", "new ratings", "users", "new items", "drift",
            "executed/cached", "ingestion+stats s", "epochs", "train s",
            "HR@10", "NDCG@10", "forward HR@10 (popular)", "forward NDCG@10",
            "blessed", "pushed"]
  if scratch:
    header += ["scratch epochs", "scratch train s", "scratch HR@10",
               "scratch NDCG@10", "scratch forward HR@10"]
  lines = ["| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  for r in result["runs"]:
    if r["stopped"]:
      cells = [str(r["span"]), str(r["new_interactions"]), "-",
               str(r["new_items"]), f"stopped: {r['stopped']}"]
      cells += ["-"] * (len(header) - len(cells))
    else:
      cells = [
          str(r["span"]), str(r["new_interactions"]), cell(r["users"]),
          str(r["new_items"]), _drift(r["drift"]),
          f"{r['executed']}/{r['cached']}",
          cell(r["ingestion_seconds"], 1), cell(r["epochs"]) + (
              " (warm)" if r["warm_start"] else ""),
          cell(r["training_seconds"], 0), cell(r["hit_rate@10"]),
          cell(r["ndcg@10"]),
          f"{cell(r['forward_hit_rate@10'])} "
          f"({cell(r['forward_popular_hit_rate@10'])})",
          cell(r["forward_ndcg@10"]), cell(r["blessed"]),
          cell(r["pushed"])]
      if scratch:
        s = by_span.get(r["span"], {})
        cells += [cell(s.get("epochs")), cell(s.get("training_seconds"), 0),
                  cell(s.get("hit_rate@10")), cell(s.get("ndcg@10")),
                  cell(s.get("forward_hit_rate@10"))]
    lines.append("| " + " | ".join(cells) + " |")
  if "ingestion_from_scratch_seconds" in result:
    lines += ["", f"Ingestion and statistics of all {len(result['spans'])} "
              "spans in a fresh store: "
              f"{result['ingestion_from_scratch_seconds']:.1f} s."]
  return "\n".join(lines)
