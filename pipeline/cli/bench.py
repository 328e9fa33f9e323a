"""`recsys bench` and `recsys bench-aliccp`: the benchmarks (pipeline/bench/)."""
import json
import os

from components.lib.feature_config import SEQUENCE_ENCODERS
from components.lib.settings import DataConfig
from pipeline.bench import shapes
from pipeline.config import ConfigError


def cmd_bench(args) -> int:
  from pipeline.bench import encoders as bench  # pylint: disable=import-outside-toplevel
  names = [e for e in args.encoders.split(",") if e]
  unknown = set(names) - set(SEQUENCE_ENCODERS)
  if unknown:
    raise ConfigError(f"--encoders: unknown {', '.join(sorted(unknown))} "
                      f"(known: {', '.join(SEQUENCE_ENCODERS)})")
  os.makedirs(args.output_dir, exist_ok=True)
  if args.remeasure:
    result = bench.remeasure(os.path.abspath(args.output_dir), args.queries)
    print(bench.markdown(result))
    return 0
  result = bench.run_bench(os.path.abspath(args.data_dir),
                           os.path.abspath(args.output_dir), names,
                           queries=args.queries)
  print(bench.markdown(result))
  print(f"written: {os.path.join(args.output_dir, 'bench.md')} and bench.json")
  return 0


def cmd_bench_shapes(args) -> int:
  names = [n for n in args.data_sets.split(",") if n]
  profiles = [p for p in args.profiles.split(",") if p]
  for given, known, flag in ((names, shapes.DATA_SETS, "--data-sets"),
                             (profiles, tuple(shapes.PROFILES), "--profiles")):
    unknown = set(given) - set(known)
    if unknown:
      raise ConfigError(f"{flag}: unknown {', '.join(sorted(unknown))} "
                        f"(known: {', '.join(known)})")
  os.makedirs(args.output_dir, exist_ok=True)
  result = shapes.run_shapes(os.path.abspath(args.data_dir),
                             os.path.abspath(args.output_dir), names, profiles,
                             resume=args.resume)
  print(shapes.markdown(result))
  print(f"written: {os.path.join(args.output_dir, 'shapes.md')} and "
        "shapes.json")
  return 0


def _positive_numbers(text: str, flag: str):
  try:
    values = [int(v) for v in text.split(",") if v]
  except ValueError:
    values = []
  if not values or min(values) < 1:
    raise ConfigError(f"{flag}: expected positive integers, e.g. 1,2; "
                      f"got {text!r}")
  return values


def cmd_bench_aliccp(args) -> int:
  from pipeline.bench import aliccp_scale  # pylint: disable=import-outside-toplevel
  sizes = _positive_numbers(args.impressions, "--impressions")
  workers = _positive_numbers(args.workers, "--workers")
  os.makedirs(args.output_dir, exist_ok=True)
  result = aliccp_scale.run(sizes, workers, os.path.abspath(args.output_dir),
                            args.group_bucket_bytes)
  table = aliccp_scale.markdown(result)
  with open(os.path.join(args.output_dir, "bench-aliccp.json"), "w") as f:
    json.dump(result, f, indent=2)
  with open(os.path.join(args.output_dir, "bench-aliccp.md"), "w") as f:
    f.write(table)
  print(table)
  return 0


def add_commands(commands) -> None:
  bench = commands.add_parser(
      "bench", help="run the pipeline per context encoder; one results table",
      description="Run the whole pipeline once per context encoder with its "
      "bench config (pipeline/bench/configs/ENCODER.yaml) and write bench.md "
      "and bench.json: HR@1/5/10/50 and NDCG@10 from TFMA, training time and "
      "throughput, TFLite size (as pushed: serving.quantization) and median "
      "latency per query with one thread, and the most-popular baseline. "
      "Rows of other encoders already in OUTPUT_DIR/bench.json (same data) "
      "are kept, so `--encoders lstm` adds LSTM to an existing table.")
  bench.add_argument("--data-dir", required=True, metavar="DIR")
  bench.add_argument("--output-dir", default="output/bench", metavar="DIR")
  bench.add_argument("--encoders", default=",".join(SEQUENCE_ENCODERS),
                     help="comma-separated (default: all five)")
  bench.add_argument("--queries", type=int, default=1000,
                     help="TFLite queries timed per model (default 1000)")
  bench.add_argument("--remeasure", action="store_true",
                     help="only measure the TFLite size and latency of the "
                     "models in OUTPUT_DIR/bench.json again")
  bench.set_defaults(func=cmd_bench)

  parser = commands.add_parser(
      "bench-shapes", help="the defaults on data sets of other shapes",
      description="Cut data sets of other shapes from the ML-1M subset in "
      "DIR (pipeline/bench/shapes.py; written under OUTPUT_DIR/data, nothing "
      "committed), and run the pipeline on each and on the embedded sample "
      "with each profile: the defaults before they adapted to the data, the "
      "adapted defaults, and those with the Tuner. Writes shapes.md and "
      "shapes.json: HR@10 and NDCG@10 from TFMA beside most popular. Rows "
      "of other data sets and profiles already in OUTPUT_DIR/shapes.json are "
      "kept.")
  parser.add_argument("--data-dir", required=True, metavar="DIR",
                      help="the ML-1M subset")
  parser.add_argument("--output-dir", default="output/bench-shapes",
                      metavar="DIR")
  parser.add_argument("--data-sets", default=",".join(shapes.DATA_SETS),
                      help="comma-separated (default: all)")
  parser.add_argument("--profiles", default=",".join(shapes.PROFILES),
                      help="comma-separated (default: all three)")
  parser.add_argument("--resume", action="store_true",
                      help="keep the runs of the named data sets and "
                      "profiles already in OUTPUT_DIR/shapes.json (an "
                      "interrupted bench) instead of running them again")
  parser.set_defaults(func=cmd_bench_shapes)

  scale = commands.add_parser(
      "bench-aliccp", help="Ali-CCP ingestion and sessionization at scale",
      description="Generate synthetic Ali-CCP data of each size and measure "
      "ingestion and sessionization (throughput, peak memory of the job's "
      "processes) on Beam's DirectRunner in multi-processing mode.")
  scale.add_argument("--impressions", default="1000000,10000000",
                     metavar="N,N", help="sizes (default 1000000,10000000)")
  scale.add_argument("--workers", default="1,2", metavar="N,N",
                     help="DirectRunner workers (default 1,2)")
  scale.add_argument("--output-dir", default="output/bench-aliccp",
                     metavar="DIR", help="generated data, logs and the table")
  scale.add_argument("--group-bucket-bytes", type=int,
                     default=DataConfig().group_bucket_bytes,
                     help="spill bucket size (data.group_bucket_bytes)")
  scale.set_defaults(func=cmd_bench_aliccp)
