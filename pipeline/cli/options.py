"""Options several `recsys` commands share, and the config they resolve to."""
import argparse
from typing import Optional

from components.lib.session_data import DATASETS
from pipeline.config import RunConfig, given_settings, help_text, load_config


def add_config_options(parser: argparse.ArgumentParser) -> None:
  """--config and --set, with every setting listed in the epilog."""
  parser.add_argument(
      "--config", metavar="FILE",
      help="YAML or JSON file with settings (same keys as below)")
  parser.add_argument(
      "--set", metavar="KEY=VALUE", action="append", default=[],
      dest="overrides",
      help="override one setting, e.g. --set train.epochs=3 (repeatable)")


def add_data_options(parser: argparse.ArgumentParser, data_dir_help: str
                     ) -> None:
  parser.add_argument("--dataset", choices=list(DATASETS),
                      help="raw format of --data-dir; sets data.dataset "
                      "(default movielens)")
  parser.add_argument("--data-dir", metavar="DIR", help=data_dir_help)


def add_store_options(parser: argparse.ArgumentParser) -> None:
  """Where a command reads recorded runs: the output directory (its MLMD
  store, or the MySQL store the config names)."""
  parser.add_argument("--output-dir", metavar="DIR",
                      help="the run's output directory (default output/sample)")
  add_config_options(parser)


def command(commands, name: str, summary: str, description: str,
            epilog: str = "") -> argparse.ArgumentParser:
  """A subcommand whose epilog lists every setting (its --set keys)."""
  return commands.add_parser(
      name, help=summary, description=description,
      epilog=help_text() + epilog,
      formatter_class=argparse.RawDescriptionHelpFormatter)


def resolve_config(args, base_dir: Optional[str] = None,
                   adapt: bool = False) -> RunConfig:
  """The RunConfig of a command's --config, --set and options; with `adapt`
  the settings they leave unset are adapted to the data
  (pipeline/adaptive.py)."""
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
  config = load_config(args.config, args.overrides, values, base_dir=base_dir)
  if not adapt:
    return config
  from pipeline import adaptive  # pylint: disable=import-outside-toplevel
  return adaptive.adapt(config, given_settings(args.config, args.overrides,
                                               values))
