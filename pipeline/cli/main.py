"""The `recsys` command: run the pipeline, inspect its runs, call a pushed
model, benchmark, manage schemas (one module per group of commands)."""
import argparse
import os
import sys
from typing import List, Optional
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

from pipeline.cli import bench  # pylint: disable=wrong-import-position
from pipeline.cli import models  # pylint: disable=wrong-import-position
from pipeline.cli import orchestrate  # pylint: disable=wrong-import-position
from pipeline.cli import results  # pylint: disable=wrong-import-position
from pipeline.cli import schema  # pylint: disable=wrong-import-position
from pipeline.config import ConfigError  # pylint: disable=wrong-import-position


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
  for group in (orchestrate, models, bench, schema, results):
    group.add_commands(commands)
  return parser


def _data_errors() -> tuple:
  """Errors caused by the input data: reported as a message, not a trace."""
  # pylint: disable=import-outside-toplevel
  from components.lib.ingestion import IngestionError
  from components.sessionize.anomalies import DataValidationError
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
