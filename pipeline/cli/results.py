"""`recsys runs`, `recsys report` and `recsys config`: what ran, what it
produced, and the config a run would use."""
import json

from pipeline.cli import options


def cmd_runs(args) -> int:
  # pylint: disable=import-outside-toplevel
  from pipeline.results import runs
  from pipeline.runners.local import quiet_console
  config = options.resolve_config(args)
  quiet_console()
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
  # pylint: disable=import-outside-toplevel
  from pipeline.results import report
  from pipeline.runners.local import quiet_console
  config = options.resolve_config(args)
  quiet_console()
  found = report.facts(config, args.run)
  print(report.format_text(found))
  if args.html:
    from pipeline.results import report_html
    report_html.write(found, args.html)
    print(f"\nwrote {args.html}")
  return 0


def cmd_config(args) -> int:
  print(options.resolve_config(args, adapt=True).to_json())
  return 0


def add_commands(commands) -> None:
  listing = options.command(
      commands, "runs", "list the pipeline runs recorded in MLMD",
      "One line per pipeline run in the output directory's MLMD store (or "
      "the MySQL store the config names): when it started, its config "
      "digest and encoder, test HR@10, blessed, how many components came "
      "from the cache, and where the model was pushed.")
  options.add_store_options(listing)
  listing.add_argument("--json", action="store_true",
                       help="print the rows as JSON")
  listing.set_defaults(func=cmd_runs)

  reporting = options.command(
      commands, "report", "report on one pipeline run (text, optionally HTML)",
      "What one run produced, read from MLMD and its artifacts: the data "
      "(TFDV statistics, anomalies, sessions), training, test metrics overall "
      "and per slice beside the most-popular baseline and the latest blessed "
      "model, the blessing and its reason, the pushed model and its size. "
      "--html also writes a self-contained HTML file with plots (HR@k, "
      "per-slice HR@10, loss curves, item popularity, history lengths).")
  options.add_store_options(reporting)
  reporting.add_argument("--run", default="latest", metavar="latest|ID",
                         help="which run: the latest (default) or a run id "
                         "as `recsys runs` lists it")
  reporting.add_argument("--html", metavar="FILE",
                         help="also write the report with plots to FILE")
  reporting.set_defaults(func=cmd_report)

  show = options.command(
      commands, "config", "print the resolved configuration",
      "Print the configuration a run would use, as JSON: the settings "
      "left unset adapted to the data (`adapted` says how and why).")
  show.add_argument("--data-dir", metavar="DIR")
  show.add_argument("--output-dir", metavar="DIR")
  options.add_config_options(show)
  show.set_defaults(func=cmd_config)
