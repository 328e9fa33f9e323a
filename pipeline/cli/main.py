"""The `recsys` command: run the pipeline, inspect its runs, call a pushed
model, benchmark, manage schemas (one module per group of commands)."""
import argparse
import os
import sys
import traceback
from typing import List, Optional
import warnings

# Before anything can import TensorFlow (see components/__init__.py). TF's C++
# start-up chatter ("Unable to register cuDNN factory" and the like, at
# error level on a CPU machine, so a common TF_CPP_MIN_LOG_LEVEL=2 shows it)
# is hidden unless --debug is given, which keeps the user's level; failures
# still raise Python exceptions.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if "--debug" in sys.argv[1:]:
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
else:
  os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
# Library deprecation notices (e.g. google-api-core on Python 3.10) are not
# actionable for someone running the pipeline.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

from pipeline.cli import bench  # pylint: disable=wrong-import-position
from pipeline.cli import models  # pylint: disable=wrong-import-position
from pipeline.cli import orchestrate  # pylint: disable=wrong-import-position
from pipeline.cli import results  # pylint: disable=wrong-import-position
from pipeline.cli import schema  # pylint: disable=wrong-import-position
from components.lib.errors import InputError  # pylint: disable=wrong-import-position
from pipeline.config import ConfigError  # pylint: disable=wrong-import-position


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="recsys",
      description="On-device next-item recommender on TFX: ingest MovieLens, "
      "validate, sessionize, train a dual encoder, evaluate with TFMA and push "
      "a TFLite model.",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="Run 'recsys COMMAND --help' for the options of a command.")
  parser.add_argument(
      "--debug", action="store_true",
      help="print the traceback of an error in the input or the settings, "
      "not only its message, and TensorFlow's C++ log at the level "
      "TF_CPP_MIN_LOG_LEVEL sets")
  commands = parser.add_subparsers(dest="command", metavar="COMMAND")
  commands.required = True
  for group in (orchestrate, models, bench, schema, results):
    group.add_commands(commands)
  return parser


# Exit codes of an error the user fixes (README, "When the input is wrong").
EXIT_INPUT_ERROR = 1
EXIT_CONFIG_ERROR = 2


def main(argv: Optional[List[str]] = None) -> int:
  """Runs a command. An error in the settings (exit 2) or in the input data
  (exit 1) is one `recsys: error:` line; --debug adds its traceback. Any
  other exception is a bug and keeps its traceback."""
  args = build_parser().parse_args(argv)
  try:
    return args.func(args)
  except (ConfigError, InputError) as e:
    if args.debug:
      traceback.print_exc()
    print(f"recsys: error: {e}", file=sys.stderr)
    return (EXIT_CONFIG_ERROR if isinstance(e, ConfigError)
            else EXIT_INPUT_ERROR)
