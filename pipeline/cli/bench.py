"""`recsys bench` and `recsys bench-aliccp`: the benchmarks (pipeline/bench/)."""
import json
import os

from components.lib.feature_config import SEQUENCE_ENCODERS
from components.lib.settings import QUANTIZATIONS, DataConfig
from pipeline.bench import shapes
from pipeline.bench.ondevice import MODELS as ONDEVICE_MODELS
from pipeline.config import ConfigError


def _known(text: str, known, flag: str):
  """A comma-separated list of names, each one of `known`."""
  names = [n for n in text.split(",") if n]
  unknown = set(names) - set(known)
  if unknown:
    raise ConfigError(f"{flag}: unknown {', '.join(sorted(unknown))} "
                      f"(known: {', '.join(known)})")
  return names


def _models(text: str):
  """--models encoder:profile,... -> [(encoder, profile)]."""
  from pipeline.config import shipped_profiles  # pylint: disable=import-outside-toplevel
  models = []
  for item in (i for i in text.split(",") if i):
    encoder, _, profile = item.partition(":")
    if encoder not in SEQUENCE_ENCODERS or profile not in shipped_profiles():
      raise ConfigError(f"--models: {item!r} is not ENCODER:PROFILE with "
                        f"ENCODER one of {', '.join(SEQUENCE_ENCODERS)} and "
                        f"PROFILE one of {', '.join(shipped_profiles())}")
    models.append((encoder, profile))
  return models


def cmd_bench_ondevice(args) -> int:
  from pipeline.bench import ondevice  # pylint: disable=import-outside-toplevel
  quantizations = _known(args.quantizations, QUANTIZATIONS, "--quantizations")
  os.makedirs(args.output_dir, exist_ok=True)
  result = ondevice.run(os.path.abspath(args.data_dir),
                        os.path.abspath(args.output_dir), _models(args.models),
                        quantizations, args.queries)
  print(ondevice.markdown(result))
  print(f"written: {os.path.join(args.output_dir, ondevice.TABLE)} and "
        f"{ondevice.RESULT}")
  return 0


def cmd_bench_two_stage(args) -> int:
  from pipeline.bench import two_stage  # pylint: disable=import-outside-toplevel
  os.makedirs(args.output_dir, exist_ok=True)
  if args.remeasure:
    result = two_stage.remeasure(os.path.abspath(args.output_dir),
                                 args.queries)
  else:
    result = two_stage.run(os.path.abspath(args.data_dir),
                           os.path.abspath(args.output_dir), args.queries)
  print(two_stage.markdown(result))
  print(f"written: {os.path.join(args.output_dir, two_stage.TABLE)} and "
        f"{two_stage.RESULT}")
  return 0


def cmd_bench(args) -> int:
  if args.on_device and args.two_stage:
    raise ConfigError("--on-device and --two-stage are two benchmarks: give "
                      "one")
  if args.on_device:
    return cmd_bench_ondevice(args)
  if args.two_stage:
    return cmd_bench_two_stage(args)
  from pipeline.bench import encoders as bench  # pylint: disable=import-outside-toplevel
  names = _known(args.encoders, SEQUENCE_ENCODERS, "--encoders")
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
  names = _known(args.data_sets, shapes.DATA_SETS, "--data-sets")
  profiles = _known(args.profiles, tuple(shapes.PROFILES), "--profiles")
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
                     "models in OUTPUT_DIR/bench.json again (--two-stage: "
                     "the latency of OUTPUT_DIR/two_stage.json's files)")
  bench.add_argument("--on-device", action="store_true",
                     help="instead: the on-device Pareto table "
                     "(pipeline/bench/ondevice.py): each of --models trained "
                     "once, converted with each of --quantizations, each file "
                     "evaluated on the test split through the TFLite "
                     "interpreter and timed against the reference workload; "
                     "writes ondevice.md and ondevice.json")
  bench.add_argument("--two-stage", action="store_true",
                     help="instead: retrieval alone against the two stages "
                     "(pipeline/bench/two_stage.py): one pipeline run of the "
                     "long-history retrieval model (attention, the quality "
                     "profile) with the next-item ranker; both evaluated by "
                     "TFMA and as TFLite files, "
                     "training times, sizes and both files' latency over "
                     "retrieval's; writes two_stage.md and two_stage.json")
  bench.add_argument("--models", default=",".join(
      f"{e}:{p}" for e, p in ONDEVICE_MODELS), metavar="ENCODER:PROFILE,...",
                     help="--on-device: the models (default: %(default)s)")
  bench.add_argument("--quantizations", default=",".join(QUANTIZATIONS),
                     help="--on-device: serving.quantization values (default: "
                     "%(default)s)")
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
