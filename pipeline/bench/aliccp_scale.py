"""`recsys bench-aliccp`: Ali-CCP ingestion and sessionization throughput and
peak memory at scale.

For each size the synthetic generator (data/make_aliccp.py, seeded) writes
the raw files once; then every measured job runs in a fresh process
(`python -m pipeline.bench.aliccp_scale ingest|sessionize ...`, the components'
executors as TFX runs them) on Beam's DirectRunner in
multi-processing mode with 1 or 2 workers, while this process samples the
resident memory of the job's whole process tree (the runner and its worker
processes) every 0.1 s. Resident sizes are summed, so pages the workers
share are counted once per process: the figure errs high. Throughput is
impressions per second of the job's Beam run, process start-up excluded.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Sequence

import psutil

from components.lib import layout
from components.lib.settings import DataConfig
from pipeline import PROJECT_ROOT
from pipeline.bench.machine import machine
from pipeline.runners.scratch import scratch_tempdir

SAMPLE_SECONDS = 0.1


def tree_rss(process: psutil.Process) -> int:
  """Resident bytes of a process and all its descendants."""
  total = 0
  for p in [process] + process.children(recursive=True):
    try:
      total += p.memory_info().rss
    except (psutil.NoSuchProcess, psutil.AccessDenied):
      pass
  return total


def run_measured(command: Sequence[str], log_path: str) -> Dict[str, Any]:
  """Runs `command`; its last stdout line (JSON), wall time and peak memory."""
  started = time.monotonic()
  with open(log_path, "w") as log:
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log,
                             text=True, cwd=PROJECT_ROOT)
    process = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
      try:
        peak = max(peak, tree_rss(process))
      except psutil.NoSuchProcess:
        break
      time.sleep(SAMPLE_SECONDS)
    out = child.stdout.read()
    child.wait()
  if child.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}); "
                       f"see {log_path}")
  return {**json.loads(out.strip().splitlines()[-1]),
          "wall_seconds": time.monotonic() - started,
          "peak_memory_bytes": peak}


def beam_args(workers: int) -> List[str]:
  return ["--direct_running_mode=multi_processing",
          f"--direct_num_workers={workers}"]


def ingest(data_dir: str, output_dir: str, workers: int,
           group_bucket_bytes: int) -> Dict[str, Any]:
  """Runs the AliCCPExampleGen executor as TFX would; returns its counts."""
  # pylint: disable=import-outside-toplevel
  from tfx.dsl.components.base import base_beam_executor
  from tfx.types import standard_artifacts
  from components.example_gen import component as base_component
  from components.example_gen.aliccp import executor as G
  from components.example_gen.aliccp.component import AliCCPExampleGen
  from components.lib import aliccp_format as A
  from components.lib import ingestion

  exec_properties = base_component.executor_properties(
      AliCCPExampleGen(data_dir, group_bucket_bytes=group_bucket_bytes))
  examples = standard_artifacts.Examples()
  examples.uri = output_dir
  executor = G.Executor(base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=beam_args(workers)))
  started = time.monotonic()
  executor.Do({}, {"examples": [examples]}, exec_properties)
  seconds = time.monotonic() - started
  with open(os.path.join(output_dir, layout.INGESTION_REPORT)) as f:
    report = json.load(f)
  return {"seconds": seconds, "examples": report["examples"],
          "dropped": sum(report[k] for k in (
              A.INCONSISTENT, G.UNMATCHED, ingestion.MALFORMED))}


def sessionize(examples_dir: str, output_dir: str, workers: int,
               group_bucket_bytes: int) -> Dict[str, Any]:
  """Runs the Sessionize executor on an ingestion output."""
  # pylint: disable=import-outside-toplevel
  from tfx.dsl.components.base import base_beam_executor
  from tfx.types import artifact_utils
  from tfx.types import standard_artifacts
  from components.artifacts import ItemCatalog
  from components.example_gen.aliccp import executor as G
  from components.lib import settings
  from components.sessionize import executor as S

  examples = standard_artifacts.Examples()
  examples.uri = examples_dir
  examples.split_names = artifact_utils.encode_split_names([G.SPLIT])
  outputs = {"sessions": standard_artifacts.Examples(),
             "schema": standard_artifacts.Schema(), "catalog": ItemCatalog()}
  for name, artifact in outputs.items():
    artifact.uri = os.path.join(output_dir, name)
  executor = S.Executor(base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=beam_args(workers)))
  started = time.monotonic()
  step = S.SessionizeSettings(
      data=settings.DataConfig(dataset="aliccp",
                               group_bucket_bytes=group_bucket_bytes),
      session=settings.SessionConfig(), eval=settings.SliceConfig())
  executor.Do({"examples": [examples]}, {k: [v] for k, v in outputs.items()},
              {S.SETTINGS: step.to_json()})
  seconds = time.monotonic() - started
  with open(os.path.join(output_dir, "sessions",
                         layout.SESSIONIZE_REPORT)) as f:
    report = json.load(f)
  return {"seconds": seconds, "users": report["users"],
          "train_examples": report["train_examples"]}


def check_accounted(impressions: int, ingested: Dict[str, Any]) -> None:
  """Every generated impression became an example or a reported drop: a
  throughput figure over lost rows would be meaningless."""
  accounted = ingested["examples"] + ingested["dropped"]
  if accounted != impressions:
    raise RuntimeError(f"ingestion accounted for {accounted:,} of "
                       f"{impressions:,} impressions")


def data_bytes(data_dir: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f))
             for d, _, files in os.walk(data_dir) for f in files)


def run(sizes: Sequence[int], workers: Sequence[int], work_dir: str,
        group_bucket_bytes: int, seed: int = 11) -> Dict[str, Any]:
  """Generates each size once and measures ingestion per worker count."""
  rows = []
  for size in sizes:
    data_dir = os.path.join(work_dir, f"aliccp-{size}")
    if not os.path.exists(os.path.join(data_dir, "done")):
      print(f"[bench-aliccp] generating {size:,} impressions", flush=True)
      subprocess.run([sys.executable,
                      os.path.join(PROJECT_ROOT, "data", "make_aliccp.py"),
                      "--output", data_dir, "--impressions", str(size),
                      "--seed", str(seed)], check=True)
      open(os.path.join(data_dir, "done"), "w").close()
    for n in workers:
      ingested = tempfile.mkdtemp(dir=work_dir, prefix="ingest-")
      sessions = tempfile.mkdtemp(dir=work_dir, prefix="sessions-")
      jobs = (("ingest", ["--data-dir", data_dir, "--output-dir", ingested]),
              ("sessionize", ["--examples-dir", ingested, "--output-dir",
                              sessions]))
      for job, job_args in jobs:
        print(f"[bench-aliccp] {job} {size:,} impressions, {n} worker(s)",
              flush=True)
        measured = run_measured(
            [sys.executable, "-m", "pipeline.bench.aliccp_scale", job,
             *job_args,
             "--workers", str(n), "--group-bucket-bytes",
             str(group_bucket_bytes)],
            os.path.join(work_dir, f"{job}-{size}-{n}.log"))
        if job == "ingest":
          check_accounted(size, measured)
        rows.append({"job": job, "impressions": size, "workers": n,
                     "input_bytes": data_bytes(data_dir), **measured,
                     "rows_per_second": size / measured["seconds"]})
        print(f"[bench-aliccp] {rows[-1]}", flush=True)
      shutil.rmtree(ingested)
      shutil.rmtree(sessions)
  return {"date": datetime.date.today().isoformat(), "machine": machine(),
          "group_bucket_bytes": group_bucket_bytes, "rows": rows}


def markdown(result: Dict[str, Any]) -> str:
  lines = [f"{result['date']}, {result['machine']}; DirectRunner in "
           "multi-processing mode, join and grouping spill buckets of "
           f"{result['group_bucket_bytes'] / 2**20:g} MiB", "",
           "| job | impressions | input MB | workers | seconds | rows/s | "
           "peak memory MB |", "|---|---|---|---|---|---|---|"]
  for r in result["rows"]:
    lines.append(
        f"| {r['job']} | {r['impressions']:,} | {r['input_bytes'] / 2**20:,.0f}"
        f" | {r['workers']} | {r['seconds']:.0f} | {r['rows_per_second']:,.0f}"
        f" | {r['peak_memory_bytes'] / 2**20:,.0f} |")
  return "\n".join(lines) + "\n"


def main(argv: Sequence[str] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  commands = parser.add_subparsers(dest="command", required=True)
  for name in ("ingest", "sessionize"):
    job = commands.add_parser(name, help=f"one measured {name} job")
    if name == "ingest":
      job.add_argument("--data-dir", required=True)
    else:
      job.add_argument("--examples-dir", required=True)
    job.add_argument("--output-dir", required=True)
    job.add_argument("--workers", type=int, default=1)
    job.add_argument("--group-bucket-bytes", type=int,
                     default=DataConfig().group_bucket_bytes)
  args = parser.parse_args(argv)
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
  with scratch_tempdir(prefix="recsys-bench-"):
    if args.command == "ingest":
      result = ingest(args.data_dir, args.output_dir, args.workers,
                      args.group_bucket_bytes)
    else:
      result = sessionize(args.examples_dir, args.output_dir, args.workers,
                          args.group_bucket_bytes)
  print(json.dumps(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())
