"""The `recsys` command: run the pipeline, get recommendations, manage schemas.

TensorFlow and TFX load lazily, inside the subcommands, so that `--help`
answers at once.
"""
import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional
import warnings

# Before anything can import TensorFlow (see components/__init__.py). TF's C++
# start-up chatter (CUDA plugins on a CPU machine) is hidden unless the user
# sets the level; failures still raise Python exceptions.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Library deprecation notices (e.g. google-api-core on Python 3.10) are not
# actionable for someone running the pipeline.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

from components import features as F  # pylint: disable=wrong-import-position
from components.session_data import MOVIELENS, session_data  # pylint: disable=wrong-import-position
from pipeline import kubeflow as kubeflow  # pylint: disable=wrong-import-position
from pipeline.config import DATASETS, RANKING_DIR, RUNNERS, ConfigError, load_config  # pylint: disable=wrong-import-position

CONFIG_HELP = """\
configuration (see pipeline/config.py for every setting and its default):
  data.dataset                 raw format family: movielens or aliccp
  data.max_malformed_lines     malformed input lines tolerated (default 0)
  data.group_bucket_bytes      joins and per-user grouping spill to disk in
                               buckets of this much input (0: Beam shuffle)
  session.min_rating           keep interactions rated >= this (default: all)
  session.min_timeline_length  drop users with fewer interactions (default 3)
  session.max_context_length   context items per example, training sequence
                               length and TFLite input length (default 50)
  session.max_item_genres      genre slots per context item (default 3)
  model.encoder                context encoder: bow, cnn, lstm, gru, attention
  model.features               feature groups: movielens_features,
                               movielens_ids, aliccp_features, or a YAML
                               file (default: the data set's own)
  model.dropout, model.share_item_embeddings,
  model.cnn_filters, model.cnn_kernel_size, model.cnn_layers, model.cnn_dilated,
  model.rnn_units, model.rnn_layers,
  model.attention_units, model.attention_layers, model.attention_heads
  model.vocabulary_top_k       keep the N most frequent values per vocabulary
                               (0: all); model.vocabulary_min_count likewise
  train.epochs, train.batch_size, train.learning_rate, train.seed
  train.loss                   softmax (full) or sampled_softmax
  train.num_negatives          negatives per batch for sampled_softmax
  train.patience               epochs without a better eval NDCG@10 to stop
  train.max_minutes            wall-time budget for training
  eval.min_hit_rate_at_10      HR@10 on test needed for a blessing
  eval.max_hit_rate_drop       largest HR@10 drop vs the latest blessed model
                               for a blessing (default 0.01)
  eval.history_length_edges    history-length slice buckets (10,20,50,100,200)
  eval.popularity_shares       shares of train interactions ending the head
                               and torso slices of targets (0.5, 0.8)
  ranking.enabled              the ranking stage: a rating model beside
                               retrieval and the two-stage evaluation
                               (rated data only; default true)
  ranking.embedding_dim, ranking.hidden_units, ranking.dropout,
  ranking.epochs, ranking.batch_size, ranking.learning_rate,
  ranking.patience, ranking.max_minutes   the rating model and its training
  ranking.min_rmse_gain        test RMSE must be this far below the
                               per-item-mean baseline's (default 0: beat it)
  ranking.max_rmse_increase    largest RMSE rise vs the latest blessed rating
                               model for a blessing (default 0.01)
  ranking.two_stage_candidates retrieval top-N sizes the two-stage evaluation
                               re-orders (10,20,50,100)
  serving.top_k                recommendations returned (default 100)
  name, push_dir               pipeline name, push root
  runner                       local (LocalDagRunner) or beam (BeamDagRunner)
  beam_args                    arguments of every component's Beam job
                               (--beam-arg replaces them)
  metadata.backend             MLMD store: sqlite (in the output directory)
                               or mysql, with metadata.mysql_host,
                               metadata.mysql_port, metadata.mysql_database,
                               metadata.mysql_user (empty: RECSYS_MYSQL_HOST,
                               _PORT, _DATABASE, _USER from the environment;
                               the password only from RECSYS_MYSQL_PASSWORD)
"""

BEAM_HELP = """Beam arguments go to every component's Beam job; write each one with '=':
  --beam-arg=--direct_running_mode=multi_processing --beam-arg=--direct_num_workers=2
  --beam-arg=--runner=FlinkRunner --beam-arg=--flink_master=HOST:8081 --beam-arg=--environment_type=LOOPBACK
  --beam-arg=--runner=SparkRunner --beam-arg=--spark_master_url=spark://HOST:7077
  --beam-arg=--runner=DataflowRunner --beam-arg=--project=P --beam-arg=--region=R --beam-arg=--temp_location=gs://B/tmp
"""


def _add_config_options(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--config", metavar="FILE",
      help="YAML or JSON file with settings (same keys as below)")
  parser.add_argument(
      "--set", metavar="KEY=VALUE", action="append", default=[],
      dest="overrides",
      help="override one setting, e.g. --set train.epochs=3 (repeatable)")


def _add_data_options(parser: argparse.ArgumentParser, data_dir_help: str
                      ) -> None:
  parser.add_argument("--dataset", choices=list(DATASETS),
                      help="raw format of --data-dir; sets data.dataset "
                      "(default movielens)")
  parser.add_argument("--data-dir", metavar="DIR", help=data_dir_help)


def _pipeline_parser(commands, name: str, summary: str, description: str
                     ) -> argparse.ArgumentParser:
  """A command that builds the pipeline (run, compile)."""
  return commands.add_parser(
      name, help=summary, description=description,
      epilog=CONFIG_HELP + "\n" + BEAM_HELP,
      formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_pipeline_options(parser: argparse.ArgumentParser, func) -> None:
  """--beam-arg, --config and --set, then the command's function."""
  parser.add_argument(
      "--beam-arg", metavar="ARG", action="append", dest="beam_args",
      help="an argument for every component's Beam job, as --beam-arg=--flag=V "
      "(repeatable; replaces beam_args)")
  _add_config_options(parser)
  parser.set_defaults(func=func)


def _config(args, base_dir: Optional[str] = None):
  values = {}
  if getattr(args, "data_dir", None):
    values.setdefault("data", {})["data_dir"] = args.data_dir
  if getattr(args, "dataset", None):
    values.setdefault("data", {})["dataset"] = args.dataset
  if getattr(args, "output_dir", None):
    values["output_dir"] = args.output_dir
  if getattr(args, "runner", None):
    values["runner"] = args.runner
  if getattr(args, "beam_args", None):
    values["beam_args"] = args.beam_args
  return load_config(args.config, args.overrides, values, base_dir=base_dir)


METRIC_ORDER = ("hit_rate@1", "hit_rate@5", "hit_rate@10", "hit_rate@50",
                "ndcg@10")


RATING_OUTPUTS = (("rating", "model"), ("item_mean_rating", "item mean"),
                  ("global_mean_rating", "global mean"))


def _format_metrics(metrics, outputs=(("scores", "model"),
                                      ("popularity_scores", "most popular")),
                    order=METRIC_ORDER) -> List[str]:
  lines = []
  for output, label in outputs:
    values = metrics.get(output, {})
    if values:
      shown = "  ".join(f"{k}={values[k]:.4f}" for k in order if k in values)
      count = int(values.get("example_count", 0))
      lines.append(f"    {label:<13} {shown}" + (
          f"  (test users: {count})" if count else ""))
  return lines


def _print_stage(summary: Dict[str, Any], outputs, order) -> None:
  if "model" in summary:
    print(f"  model:      {summary['model']}")
  if "tensorboard" in summary:
    print(f"  tensorboard --logdir {summary['tensorboard']}")
  if "evaluation" in summary:
    print(f"  evaluation: {summary['evaluation']}")
    print("\n".join(_format_metrics(summary.get("metrics", {}), outputs,
                                    order)))
  reason = summary.get("blessing_reason")
  print(f"  blessed:    {'yes' if summary.get('blessed') else 'no'}"
        + (f" ({reason})" if reason else ""))
  if summary.get("pushed"):
    print(f"  pushed:     {summary['pushed']}")
  else:
    print("  pushed:     nothing (model not blessed)")


def format_two_stage(metrics: Dict[str, Any]) -> List[str]:
  """Retrieval alone and re-ordered top-N, one line each."""
  def line(label, values):
    return f"    {label:<22} " + "  ".join(
        f"{k}={values[k]:.4f}" for k in METRIC_ORDER if k in values)
  return [line("retrieval alone", metrics["retrieval"])] + [
      line(f"top {n} by rating", values)
      for n, values in metrics["two_stage"].items()]


def cmd_run(args) -> int:
  from pipeline import runner  # pylint: disable=import-outside-toplevel
  config = _config(args)
  print(f"[recsys] data {config.data.data_dir} -> {config.output_dir} "
        f"({config.runner} runner)")
  summary = runner.run(config, quiet=True)
  print(f"[recsys] pipeline finished in {summary['seconds']:.1f} s (config "
        f"{summary['config'].digest()}, as `recsys runs` lists it)")
  print(f"  config:     {summary['run_config']}")
  _print_stage(summary, (("scores", "model"),
                         ("popularity_scores", "most popular")), METRIC_ORDER)
  if "ranking" in summary:
    print("ranking stage (rating model):")
    _print_stage(summary["ranking"], RATING_OUTPUTS, ("rmse", "mae"))
  if "two_stage" in summary:
    print(f"two-stage, test split ({summary['two_stage']['users']} users):")
    print("\n".join(format_two_stage(summary["two_stage"])))
  return 0


def _latest_version(model_dir: str) -> str:
  """A version directory, or the newest version under a push root."""
  if os.path.exists(os.path.join(model_dir, "model.tflite")):
    return model_dir
  versions = [d for d in os.listdir(model_dir) if d.isdigit()] if os.path.isdir(
      model_dir) else []
  if not versions:
    raise ConfigError(f"no pushed model (model.tflite) in {model_dir}")
  return os.path.join(model_dir, max(versions, key=int))


def _pushed_dataset(version_dir: str) -> str:
  """The data set a pushed model was trained on (its metadata.json)."""
  try:
    with open(os.path.join(version_dir, "metadata.json"), encoding="utf-8") as f:
      return json.load(f)["config"]["data"]["dataset"]
  except (OSError, KeyError, ValueError):
    return MOVIELENS


def _describe(entry: Dict[str, Any]) -> str:
  """An item's title (MovieLens), else its catalog fields."""
  if "title" in entry:
    return entry["title"]
  return " ".join(f"{k}={v}" for k, v in sorted(entry.items()) if v)


def cmd_recommend(args) -> int:
  from components import tflite  # pylint: disable=import-outside-toplevel
  version_dir = _latest_version(args.model)
  catalog = {}
  catalog_path = os.path.join(version_dir, "items.json")
  if os.path.exists(catalog_path):
    with open(catalog_path, encoding="utf-8") as f:
      catalog = json.load(f)
  history = [h.strip() for h in args.history.split(",") if h.strip()]
  # The position features of each history item the catalog knows.
  data = session_data(_pushed_dataset(version_dir))
  features: Dict[str, list] = {}
  for item in history:
    known = data.item_features(catalog.get(item, {}))
    for name, value in known.items():
      features.setdefault(name, []).append(value)
  if args.ratings:
    ratings = [float(r) for r in args.ratings.split(",")]
    if len(ratings) != len(history):
      raise ConfigError("--ratings must give one rating per --history item")
    features[F.CONTEXT_RATING] = ratings
  unknown = [h for h in history if catalog and h not in catalog]
  if unknown:
    print(f"note: not in the catalog (treated as unknown): {', '.join(unknown)}",
          file=sys.stderr)
  recommender = tflite.TFLiteRecommender(
      os.path.join(version_dir, "model.tflite"), num_threads=1)
  user = {}
  for item in args.user:
    name, _, value = item.partition("=")
    if name not in recommender.inputs or not value:
      raise ConfigError(f"--user {item!r}: expected NAME=VALUE with NAME one of "
                        f"the model's inputs ({', '.join(recommender.inputs)})")
    user[name] = recommender.parse_value(name, value)
  ids, scores = recommender.recommend(
      history, {k: v for k, v in features.items() if k in recommender.inputs},
      user=user)
  print(f"model {version_dir}")
  if not args.two_stage:
    for rank, (item, score) in enumerate(zip(ids[:args.top], scores), start=1):
      print(f"{rank:>3}. {item:>8}  {score:8.3f}  "
            f"{_describe(catalog.get(item, {}))}")
    return 0
  # Two stages: the retrieval top-K re-ordered by predicted rating.
  rating_dir = _latest_version(args.ranking_model or os.path.join(
      os.path.dirname(version_dir), RANKING_DIR))
  rater = tflite.TFLiteRater(os.path.join(rating_dir, "model.tflite"))
  rater_user = {k: v for k, v in user.items() if k in rater.inputs}
  predicted = rater.rate(history, ids, features.get(F.CONTEXT_RATING),
                         rater_user)
  order = sorted(range(len(ids)), key=lambda i: (-predicted[i], i))
  print(f"rating model {rating_dir}: the top {len(ids)} re-ordered by "
        "predicted rating")
  for rank, i in enumerate(order[:args.top], start=1):
    print(f"{rank:>3}. {ids[i]:>8}  rating {predicted[i]:5.2f}  "
          f"(retrieval #{i + 1})  {_describe(catalog.get(ids[i], {}))}")
  return 0


def cmd_latency(args) -> int:
  from components import tflite  # pylint: disable=import-outside-toplevel
  version_dir = _latest_version(args.model)
  result = tflite.measure_pushed_model(version_dir, args.queries, args.threads,
                                       args.seed)
  if args.json:
    print(json.dumps(result))
    return 0
  print(f"model {result['path']} ({result['bytes']:,} bytes), "
        f"{args.threads} thread(s), {result['queries']} queries of "
        f"{result['context_length']} items: median {result['median_ms']:.3f} "
        f"ms, p90 {result['p90_ms']:.3f} ms, max {result['max_ms']:.3f} ms")
  return 0


def cmd_bench(args) -> int:
  from pipeline import bench  # pylint: disable=import-outside-toplevel
  encoders = [e for e in args.encoders.split(",") if e]
  unknown = set(encoders) - set(bench.ENCODERS)
  if unknown:
    raise ConfigError(f"--encoders: unknown {', '.join(sorted(unknown))} "
                      f"(known: {', '.join(bench.ENCODERS)})")
  os.makedirs(args.output_dir, exist_ok=True)
  if args.remeasure:
    result = bench.remeasure(os.path.abspath(args.output_dir), args.queries)
    print(bench.markdown(result))
    return 0
  result = bench.run_bench(os.path.abspath(args.data_dir),
                           os.path.abspath(args.output_dir), encoders,
                           queries=args.queries)
  print(bench.markdown(result))
  print(f"written: {os.path.join(args.output_dir, 'bench.md')} and bench.json")
  return 0


def cmd_bench_aliccp(args) -> int:
  from pipeline import scale_bench  # pylint: disable=import-outside-toplevel
  def numbers(text, flag):
    try:
      values = [int(v) for v in text.split(",") if v]
    except ValueError:
      values = []
    if not values or min(values) < 1:
      raise ConfigError(f"{flag}: expected positive integers, e.g. 1,2; "
                        f"got {text!r}")
    return values
  sizes = numbers(args.impressions, "--impressions")
  workers = numbers(args.workers, "--workers")
  os.makedirs(args.output_dir, exist_ok=True)
  result = scale_bench.run(sizes, workers, os.path.abspath(args.output_dir),
                           args.group_bucket_bytes)
  table = scale_bench.markdown(result)
  with open(os.path.join(args.output_dir, "bench-aliccp.json"), "w") as f:
    json.dump(result, f, indent=2)
  with open(os.path.join(args.output_dir, "bench-aliccp.md"), "w") as f:
    f.write(table)
  print(table)
  return 0


def cmd_infer_schema(args) -> int:
  from pipeline import schema_tools  # pylint: disable=import-outside-toplevel
  path = schema_tools.infer_schema(os.path.abspath(args.data_dir), args.output,
                                   args.dataset)
  print(f"wrote the inferred schema to {path}; compare it with the curated one "
        "(schemas/<dataset>/schema.pbtxt) and carry the curations over")
  return 0


def cmd_compile(args) -> int:
  config = _config(args, base_dir=kubeflow.IMAGE_ROOT)
  job = kubeflow.compile_pipeline(config, args.output, args.image,
                                       args.pipeline_root)
  tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
  print(f"wrote {args.output}: {len(tasks)} steps in image {args.image}, "
        f"pipeline root {job['runtimeConfig']['gcsOutputDirectory']}")
  return 0


def cmd_kubeflow(args) -> int:
  if args.action == "run":
    if args.cron:
      raise ConfigError("--cron is for `recsys kubeflow schedule`")
    run_id = kubeflow.submit(args.spec, args.host, args.experiment, args.name)
    print(f"submitted run {run_id} to {args.host}")
    return 0
  if not args.cron:
    raise ConfigError("recsys kubeflow schedule needs --cron EXPR")
  recurring_id = kubeflow.schedule(args.spec, args.host, args.cron,
                                   args.experiment, args.name)
  print(f"created recurring run {recurring_id} on {args.host} "
        f"(cron {kubeflow.kfp_cron(args.cron)})")
  return 0


def cmd_runs(args) -> int:
  from pipeline import runner, runs  # pylint: disable=import-outside-toplevel
  config = _config(args)
  runner.quiet_console()
  rows = runs.list_runs(config)
  if args.json:
    print(json.dumps(rows, indent=2))
  elif not rows:
    print(f"no runs of pipeline {config.name!r} in the metadata of "
          f"{config.output_dir}")
  else:
    print(runs.format_runs(rows))
  return 0


def cmd_report(args) -> int:
  from pipeline import report, runner  # pylint: disable=import-outside-toplevel
  config = _config(args)
  runner.quiet_console()
  found = report.facts(config, args.run)
  print(report.format_text(found))
  if args.html:
    from pipeline import report_html  # pylint: disable=import-outside-toplevel
    report_html.write(found, args.html)
    print(f"\nwrote {args.html}")
  return 0


def cmd_config(args) -> int:
  print(_config(args).to_json())
  return 0


def _add_store_options(parser: argparse.ArgumentParser) -> None:
  """Where a command reads recorded runs: the output directory (its MLMD
  store, or the MySQL store the config names)."""
  parser.add_argument("--output-dir", metavar="DIR",
                      help="the run's output directory (default output/sample)")
  _add_config_options(parser)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="recsys",
      description="On-device next-item recommender on TFX: ingest MovieLens, "
      "validate, sessionize, train a dual encoder, evaluate with TFMA and push "
      "a TFLite model.",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="Run 'recsys COMMAND --help' for the options of a command.")
  commands = parser.add_subparsers(dest="command", metavar="COMMAND")
  commands.required = True

  run = _pipeline_parser(
      commands, "run", "run the whole pipeline (LocalDagRunner or "
      "BeamDagRunner)", "Run ingestion -> statistics/validation -> "
      "sessionization -> Transform -> Trainer -> Evaluator (TFMA) -> TFLite "
      "push, with an MLMD store (SQLite in the output directory, or MySQL) so "
      "that a repeated identical run reuses cached executions.")
  _add_data_options(run, "raw MovieLens files (ML-1M, ML-100K or CSV layout) "
                    "or an Ali-CCP directory (train/, test/); sets "
                    "data.data_dir (default data/sample)")
  run.add_argument("--output-dir", metavar="DIR",
                   help="pipeline root, MLMD store, logs and pushed models; "
                   "sets output_dir (default output/sample)")
  run.add_argument("--runner", choices=list(RUNNERS),
                   help="TFX orchestrator: local (LocalDagRunner, default) or "
                   "beam (BeamDagRunner); sets runner")
  _add_pipeline_options(run, cmd_run)

  compile_ = _pipeline_parser(
      commands, "compile", "compile the pipeline for Kubeflow Pipelines",
      "Compile the same pipeline with TFX's KubeflowV2DagRunner into a KFP v2 "
      "pipeline spec (.json: PipelineJob; .yaml: PipelineSpec). Every step "
      "runs in IMAGE (built from the Dockerfile), where the project lives at "
      f"{kubeflow.IMAGE_ROOT}: relative paths (the default data/sample, the "
      "curated schemas/) name files in the image.")
  compile_.add_argument("--target", choices=["kubeflow"], default="kubeflow",
                        help="orchestrator to compile for (kubeflow)")
  compile_.add_argument("--output", required=True, metavar="FILE",
                        help="the spec to write (pipeline.json or .yaml)")
  compile_.add_argument("--image", default=kubeflow.DEFAULT_IMAGE,
                        help="container image of every step (default "
                        f"{kubeflow.DEFAULT_IMAGE})")
  compile_.add_argument("--pipeline-root", metavar="URI",
                        help="where the steps write artifacts, on storage "
                        "they all reach (gs://BUCKET/recsys); pushed models "
                        "go to URI/serving unless push_dir is set (default: "
                        "OUTPUT_DIR/pipeline_root inside the image)")
  _add_data_options(compile_, "the raw data as the steps see it: a path in "
                    "the image or a URI; sets data.data_dir (default "
                    "data/sample)")
  _add_pipeline_options(compile_, cmd_compile)

  submit = commands.add_parser(
      "kubeflow", help="submit or schedule a compiled pipeline",
      description="Submit a compiled pipeline (recsys compile) to a Kubeflow "
      "Pipelines API server as one run, or create a recurring run.")
  submit.add_argument("action", choices=["run", "schedule"])
  submit.add_argument("--spec", default="pipeline.json", metavar="FILE",
                        help="the compiled pipeline (default pipeline.json)")
  submit.add_argument("--host", required=True, metavar="URL",
                        help="the KFP API endpoint, e.g. http://localhost:8080 "
                        "(kubectl port-forward to ml-pipeline-ui)")
  submit.add_argument("--cron", metavar="EXPR",
                        help="schedule: cron expression, 5 fields (minute hour "
                        "day month weekday) or KFP's 6 (seconds first)")
  submit.add_argument("--experiment", default=kubeflow.DEFAULT_EXPERIMENT,
                        help="KFP experiment (created if missing)")
  submit.add_argument("--name", help="run or recurring-run name")
  submit.set_defaults(func=cmd_kubeflow)

  recommend = commands.add_parser(
      "recommend", help="recommend from a pushed TFLite model",
      description="Load a pushed model.tflite and print its top items for a "
      "history, the way an app would call it (1 thread).")
  recommend.add_argument("--model", required=True, metavar="DIR",
                         help="a pushed version directory, or the push root "
                         "(the newest version is used)")
  recommend.add_argument("--history", required=True, metavar="ID,ID,...",
                         help="item ids, oldest first")
  recommend.add_argument("--ratings", metavar="R,R,...",
                         help="the history's ratings (default: not rated)")
  recommend.add_argument("--user", action="append", default=[],
                         metavar="NAME=VALUE",
                         help="a user feature the model takes, e.g. "
                         "user_gender=F or user_age=25 (repeatable)")
  recommend.add_argument("--top", type=int, default=10,
                         help="how many to print (default 10)")
  recommend.add_argument("--two-stage", action="store_true",
                         help="re-order the retrieval model's top items by "
                         "the pushed rating model's predicted rating")
  recommend.add_argument("--ranking-model", metavar="DIR",
                         help="the rating model for --two-stage: a version "
                         "directory or its push root (default: ranking/ "
                         "beside the retrieval model's versions)")
  recommend.set_defaults(func=cmd_recommend)

  latency = commands.add_parser(
      "latency", help="time queries through a pushed TFLite model",
      description="Run random full-length histories from the catalog through "
      "model.tflite one query at a time (tf.lite.Interpreter) and print the "
      "median, p90 and max milliseconds per query.")
  latency.add_argument("--model", required=True, metavar="DIR",
                       help="a pushed version directory, or the push root")
  latency.add_argument("--queries", type=int, default=1000)
  latency.add_argument("--threads", type=int, default=1)
  latency.add_argument("--json", action="store_true",
                       help="print the figures as one JSON object")
  latency.add_argument("--seed", type=int, default=0)
  latency.set_defaults(func=cmd_latency)

  bench = commands.add_parser(
      "bench", help="run the pipeline per context encoder; one results table",
      description="Run the whole pipeline once per context encoder with its "
      "bench config (pipeline/bench/ENCODER.yaml) and write bench.md and "
      "bench.json: HR@1/5/10/50 and NDCG@10 from TFMA, training time and "
      "throughput, TFLite size (float32 and float16 weights) and median "
      "latency per query with one thread, and the most-popular baseline. "
      "Rows of other encoders already in OUTPUT_DIR/bench.json (same data) "
      "are kept, so `--encoders lstm` adds LSTM to an existing table.")
  bench.add_argument("--data-dir", required=True, metavar="DIR")
  bench.add_argument("--output-dir", default="output/bench", metavar="DIR")
  bench.add_argument("--encoders", default="bow,cnn,lstm,gru,attention",
                     help="comma-separated (default: all five)")
  bench.add_argument("--queries", type=int, default=1000,
                     help="TFLite queries timed per model (default 1000)")
  bench.add_argument("--remeasure", action="store_true",
                     help="only measure the TFLite size and latency of the "
                     "models in OUTPUT_DIR/bench.json again")
  bench.set_defaults(func=cmd_bench)

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
  scale.add_argument("--group-bucket-bytes", type=int, default=32 * 2**20,
                     help="spill bucket size (data.group_bucket_bytes)")
  scale.set_defaults(func=cmd_bench_aliccp)

  infer = commands.add_parser(
      "infer-schema", help="infer a raw-data schema with TFDV",
      description="Ingest DIR, compute TFDV statistics and write the inferred "
      "schema, the starting point for curating schemas/<dataset>/schema.pbtxt.")
  infer.add_argument("--data-dir", required=True, metavar="DIR")
  infer.add_argument("--output", required=True, metavar="FILE")
  infer.add_argument("--dataset", default="movielens",
                     choices=["movielens", "aliccp"])
  infer.set_defaults(func=cmd_infer_schema)

  listing = commands.add_parser(
      "runs", help="list the pipeline runs recorded in MLMD",
      description="One line per pipeline run in the output directory's MLMD "
      "store (or the MySQL store the config names): when it started, its "
      "config digest and encoder, test HR@10, blessed, how many components "
      "came from the cache, and where the model was pushed.",
      epilog=CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
  _add_store_options(listing)
  listing.add_argument("--json", action="store_true",
                       help="print the rows as JSON")
  listing.set_defaults(func=cmd_runs)

  reporting = commands.add_parser(
      "report", help="report on one pipeline run (text, optionally HTML)",
      description="What one run produced, read from MLMD and its artifacts: "
      "the data (TFDV statistics, anomalies, sessions), training, test "
      "metrics overall and per slice beside the most-popular baseline and the "
      "latest blessed model, the blessing and its reason, the pushed model "
      "and its size. --html also writes a self-contained HTML file with plots "
      "(HR@k, per-slice HR@10, loss curves, item popularity, history "
      "lengths).",
      epilog=CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
  _add_store_options(reporting)
  reporting.add_argument("--run", default="latest", metavar="latest|ID",
                         help="which run: the latest (default) or a run id "
                         "as `recsys runs` lists it")
  reporting.add_argument("--html", metavar="FILE",
                         help="also write the report with plots to FILE")
  reporting.set_defaults(func=cmd_report)

  show = commands.add_parser(
      "config", help="print the resolved configuration",
      description="Print the configuration a run would use, as JSON.",
      epilog=CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
  show.add_argument("--data-dir", metavar="DIR")
  show.add_argument("--output-dir", metavar="DIR")
  _add_config_options(show)
  show.set_defaults(func=cmd_config)
  return parser


def _data_errors() -> tuple:
  """Errors caused by the input data: reported as a message, not a trace."""
  from components.anomalies import DataValidationError  # pylint: disable=import-outside-toplevel
  from components.ingestion import IngestionError  # pylint: disable=import-outside-toplevel
  return (DataValidationError, IngestionError)


def main(argv: Optional[List[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    return args.func(args)
  except ConfigError as e:
    print(f"recsys: error: {e}", file=sys.stderr)
    return 2
  except Exception as e:  # pylint: disable=broad-except
    if isinstance(e, _data_errors()):
      print(f"recsys: error: {e}", file=sys.stderr)
      return 1
    raise


if __name__ == "__main__":
  sys.exit(main())
