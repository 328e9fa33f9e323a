"""`recsys run`, `recsys replay`, `recsys compile` and `recsys kubeflow`:
running the pipeline here (once, or once per span of a replayed data set),
or compiling and submitting it to Kubeflow Pipelines."""
import argparse
import os
from typing import Any, Dict, List

from components.model.export import signature_names as names
from pipeline.cli import options
from pipeline.config import RUNNERS, ConfigError
from pipeline.runners import kubeflow

BEAM_HELP = """
Beam arguments go to every component's Beam job; write each one with '=':
  --beam-arg=--direct_running_mode=multi_processing --beam-arg=--direct_num_workers=2
  --beam-arg=--runner=FlinkRunner --beam-arg=--flink_master=HOST:8081 --beam-arg=--environment_type=LOOPBACK
  --beam-arg=--runner=SparkRunner --beam-arg=--spark_master_url=spark://HOST:7077
  --beam-arg=--runner=DataflowRunner --beam-arg=--project=P --beam-arg=--region=R --beam-arg=--temp_location=gs://B/tmp
"""
RETRIEVAL_OUTPUTS = ((names.SCORES, "model"),
                     (names.POPULARITY_SCORES, "most popular"))
# The ranker's evaluation: the two stages' scores of the catalog.
RANKER_OUTPUTS = ((names.SCORES, "two stages"),)
RATING_OUTPUTS = ((names.RATING, "model"),
                  (names.ITEM_MEAN_RATING, "item mean"),
                  (names.GLOBAL_MEAN_RATING, "global mean"))


def _format_metrics(metrics, outputs, order,
                    counted: str = "test users") -> List[str]:
  lines = []
  for output, label in outputs:
    values = metrics.get(output, {})
    if values:
      shown = "  ".join(f"{k}={values[k]:.4f}" for k in order if k in values)
      count = int(values.get("example_count", 0))
      lines.append(f"    {label:<13} {shown}" + (
          f"  ({counted}: {count})" if count else ""))
  return lines


def _print_stage(summary: Dict[str, Any], outputs, order,
                 tflite_label: str = "model.tflite") -> None:
  if "model" in summary:
    print(f"  model:      {summary['model']}")
  if "tensorboard" in summary:
    print(f"  tensorboard --logdir {summary['tensorboard']}")
  if "evaluation" in summary:
    print(f"  evaluation: {summary['evaluation']}")
    print("\n".join(_format_metrics(summary.get("metrics", {}), outputs,
                                    order)))
  tflite = summary.get("tflite")
  if tflite:
    shown = "  ".join(f"{k}={tflite['overall'][k]:.4f}" for k in order
                      if k in tflite["overall"])
    files = f"{tflite['tflite_bytes']:,}"
    if "retrieval_tflite_bytes" in tflite:  # a ranker's, after retrieval's
      files = f"{tflite['retrieval_tflite_bytes']:,} + {files}"
    print(f"    {tflite_label:<13} {shown}  ({files} bytes, through the "
          "TFLite interpreter)")
  reason = summary.get("blessing_reason")
  print(f"  blessed:    {'yes' if summary.get('blessed') else 'no'}"
        + (f" ({reason})" if reason else ""))
  if summary.get("pushed"):
    print(f"  pushed:     {summary['pushed']}")
  else:
    print("  pushed:     nothing (" + summary.get(
        "not_pushed_reason", "model not blessed") + ")")


def _format_two_stage(metrics: Dict[str, Any], order) -> List[str]:
  """Retrieval alone and re-ordered top-N, one line each."""
  def line(label, values):
    return f"    {label:<22} " + "  ".join(
        f"{k}={values[k]:.4f}" for k in order if k in values)
  return [line("retrieval alone", metrics["retrieval"])] + [
      line(f"top {n} by rating", values)
      for n, values in metrics["two_stage"].items()]


def cmd_run(args) -> int:
  # pylint: disable=import-outside-toplevel
  from components.user_modules.evaluation import REPORTED_METRICS
  from pipeline import adaptive
  from pipeline.runners import local
  config = options.resolve_config(args, adapt=True)
  print(f"[recsys] data {config.data.data_dir} -> {config.output_dir} "
        f"({config.runner} runner)")
  for line in adaptive.describe(config):
    print(f"[recsys] {line}")
  summary = local.run(config, quiet=True)
  print(f"[recsys] pipeline finished in {summary['seconds']:.1f} s (config "
        f"{summary['config'].digest()}, as `recsys runs` lists it)")
  print(f"  config:     {summary['run_config']}")
  _print_stage(summary, RETRIEVAL_OUTPUTS, REPORTED_METRICS)
  forward = summary.get("forward") or {}
  if forward.get("metrics"):
    print(f"  forward:    span {forward['span']}, the model blessed before "
          f"it (trained through span {forward['model_trained_through_span']})")
    print("\n".join(_format_metrics(forward["metrics"], RETRIEVAL_OUTPUTS,
                                    REPORTED_METRICS, "users")))
  elif forward.get("span") is not None:
    print(f"  forward:    none ({forward['status']})")
  if "ranker" in summary:
    print("next-item ranker (retrieval's best candidates re-ordered; "
          "evaluated against retrieval alone):")
    _print_stage(summary["ranker"], RANKER_OUTPUTS, REPORTED_METRICS,
                 "both files")
  if "ranking" in summary:
    print("ranking stage (rating model):")
    _print_stage(summary["ranking"], RATING_OUTPUTS, ("rmse", "mae"))
  if "two_stage" in summary:
    print(f"retrieval's top N by predicted rating, test split "
          f"({summary['two_stage']['users']} users):")
    print("\n".join(_format_two_stage(summary["two_stage"],
                                       REPORTED_METRICS)))
  return 0


def cmd_replay(args) -> int:
  # pylint: disable=import-outside-toplevel
  from pipeline import adaptive
  from pipeline.runners import replay
  if args.dataset not in (None, "movielens"):
    raise ConfigError("recsys replay cuts MovieLens data (by timestamp); "
                      "Ali-CCP has no timestamps")
  config = options.resolve_config(args, adapt=True)
  output_dir = os.path.abspath(args.output_dir)
  print(f"[recsys] replay: {config.data.data_dir} cut into {args.spans} "
        f"spans -> {output_dir}")
  for line in adaptive.describe(config):
    print(f"[recsys] {line}")
  result = replay.run(config, os.path.abspath(config.data.data_dir),
                      args.spans, output_dir)
  print(replay.markdown(result))
  print(f"wrote {os.path.join(output_dir, replay.TABLE)} and "
        f"{replay.RESULT}")
  return 0


def cmd_replay_table(args) -> int:
  from pipeline.runners import replay  # pylint: disable=import-outside-toplevel
  result = replay.read(args.replay)
  scratch = replay.read(args.scratch) if args.scratch else None
  def cuts(found):  # the spans, wherever each replay wrote them
    return [{k: v for k, v in span.items() if k != "directory"}
            for span in found["spans"]]
  if scratch and cuts(scratch) != cuts(result):
    raise ConfigError(f"{args.scratch} replayed other spans than "
                      f"{args.replay}: not comparable")
  replay.write(args.replay, result, scratch)
  print(replay.markdown(result, scratch))
  return 0


def cmd_compile(args) -> int:
  config = options.resolve_config(args, base_dir=kubeflow.IMAGE_ROOT)
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


def _add_pipeline_options(parser: argparse.ArgumentParser, func) -> None:
  """--beam-arg, --config and --set, then the command's function."""
  parser.add_argument(
      "--beam-arg", metavar="ARG", action="append", dest="beam_args",
      help="an argument for every component's Beam job, as --beam-arg=--flag=V "
      "(repeatable; replaces beam_args)")
  options.add_config_options(parser)
  parser.set_defaults(func=func)


def add_commands(commands) -> None:
  run = options.command(
      commands, "run", "run the whole pipeline (LocalDagRunner or "
      "BeamDagRunner)", "Run ingestion -> statistics/validation -> "
      "sessionization -> Transform -> Trainer -> Evaluator (TFMA) -> TFLite "
      "push, with an MLMD store (SQLite in the output directory, or MySQL) so "
      "that a repeated identical run reuses cached executions.", BEAM_HELP)
  options.add_data_options(
      run, "raw MovieLens files (ML-1M, ML-100K or CSV layout) or an Ali-CCP "
      "directory (train/, test/); sets data.data_dir (default data/sample)")
  run.add_argument("--output-dir", metavar="DIR",
                   help="pipeline root, MLMD store, logs and pushed models; "
                   "sets output_dir (default output/sample)")
  run.add_argument("--runner", choices=list(RUNNERS),
                   help="TFX orchestrator: local (LocalDagRunner, default) or "
                   "beam (BeamDagRunner); sets runner")
  _add_pipeline_options(run, cmd_run)

  replay_ = options.command(
      commands, "replay", "replay a MovieLens data set as spans arriving "
      "one by one", "Cut the ratings by timestamp into SPANS spans of equal "
      "size, then run the pipeline once per span as a scheduler would (span "
      "k arrives before run k), in one output directory and MLMD store; "
      "print and write (replay.md, replay.json) one row per run: new "
      "ratings, users, new items, drift distances, components executed and "
      "cached, ingestion time, training epochs and time (warm-started or "
      "not: train.warm_start), test and forward HR@10/NDCG@10, blessed, "
      "pushed. The settings are those `recsys run` adapts to the whole data "
      "set, the same for every run.", BEAM_HELP)
  options.add_data_options(replay_, "the MovieLens files to cut (default "
                           "data/sample)")
  replay_.add_argument("--spans", type=int, default=8,
                       help="how many spans (default 8)")
  replay_.add_argument("--output-dir", default="output/replay", metavar="DIR",
                       help="an empty directory for the spans, the runs and "
                       "the table (default output/replay)")
  _add_pipeline_options(replay_, cmd_replay)

  table = commands.add_parser(
      "replay-table", help="the table of a replay beside a from-scratch one",
      description="Print (and rewrite into REPLAY/replay.md) the table of a "
      "finished replay, with the from-scratch columns of SCRATCH: the same "
      "replay run with --set train.warm_start=false.")
  table.add_argument("replay", metavar="REPLAY",
                     help="the replay's output directory")
  table.add_argument("scratch", metavar="SCRATCH", nargs="?",
                     help="the from-scratch replay's output directory")
  table.set_defaults(func=cmd_replay_table)

  compile_ = options.command(
      commands, "compile", "compile the pipeline for Kubeflow Pipelines",
      "Compile the same pipeline with TFX's KubeflowV2DagRunner into a KFP v2 "
      "pipeline spec (.json: PipelineJob; .yaml: PipelineSpec). Every step "
      "runs in IMAGE (built from the Dockerfile), where the project lives at "
      f"{kubeflow.IMAGE_ROOT}: relative paths (the default data/sample, the "
      "curated schemas/) name files in the image.", BEAM_HELP)
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
  options.add_data_options(
      compile_, "the raw data as the steps see it: a path in the image or a "
      "URI; sets data.data_dir (default data/sample)")
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
