"""Data that arrives in periods: one `span-{SPAN}/` directory per period.

A data directory holds either the raw files of one period (a flat
directory, today's layout: span 0) or one `span-NNNN/` directory per period
(zero-padded integers of one width), each with that period's raw files in a
supported layout. Catalog files (MovieLens movies and users) may be in every
span or only in the newest: a span without its own is read with those of the
newest span that has them.

The span numbers are TFX's: the ExampleGens' input pattern holds `{SPAN}`,
TFX's driver resolves the span to ingest (the newest, or the one a
RangeConfig names) and puts its number on the Examples artifact, and
resolvers downstream select spans by that number.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Tuple

import tensorflow as tf

from components.lib.ingestion import IngestionError

PREFIX = "span-"
_DIR = re.compile(re.escape(PREFIX) + r"(\d+)$")
# The flat directory's span number (TFX's, for a pattern without {SPAN}).
FLAT_SPAN = 0


def span_dirs(data_dir: str) -> Dict[int, str]:
  """span -> its directory, in span order; empty for a flat directory.

  Fails on what TFX's span matching would read wrongly: widths that differ
  (span-9 beside span-10), two directories of one span, or span directories
  beside raw files of their own.
  """
  return _scan(data_dir)[0]


def _scan(data_dir: str) -> Tuple[Dict[int, str], int]:
  """(span_dirs, the width of their numbers: 0 when flat)."""
  if not tf.io.gfile.isdir(data_dir):
    raise IngestionError(f"data directory not found: {data_dir}")
  found: Dict[int, str] = {}
  widths = set()
  others = []
  for name in sorted(n.rstrip("/") for n in tf.io.gfile.listdir(data_dir)):
    path = os.path.join(data_dir, name)
    match = _DIR.match(name)
    if match and tf.io.gfile.isdir(path):
      span = int(match.group(1))
      if span in found:
        raise IngestionError(
            f"{data_dir}: {os.path.basename(found[span])} and {name} are "
            f"both span {span}")
      found[span] = path
      widths.add(len(match.group(1)))
    elif not name.startswith("."):
      others.append(name)
  if len(widths) > 1:
    raise IngestionError(
        f"{data_dir}: span directories of different widths "
        f"({', '.join(sorted(os.path.basename(p) for p in found.values()))}); "
        "zero-pad every span number to one width (span-0009, span-0010)")
  if found and others:
    raise IngestionError(
        f"{data_dir} holds span directories and other files "
        f"({', '.join(others[:5])}): put each period's files in its "
        f"{PREFIX}NNNN directory")
  return dict(sorted(found.items())), (widths.pop() if widths else 0)


def input_pattern(data_dir: str, files: str) -> str:
  """The ExampleGen input pattern (relative to data_dir) of the raw files
  matching `files` in one span. A data_dir not reachable from here (a
  pipeline compiled for a cluster) is taken to be flat."""
  if not tf.io.gfile.isdir(data_dir):
    return files
  width = _scan(data_dir)[1]
  # The width lets TFX's driver write a RangeConfig's span as a name.
  return f"{PREFIX}{{SPAN:{width}}}/{files}" if width else files


def span_dir(data_dir: str, span: Optional[int] = None) -> str:
  """The directory of `span` (None: the newest); data_dir itself when it
  is flat."""
  spans = span_dirs(data_dir)
  if not spans:
    if span not in (None, FLAT_SPAN):
      raise IngestionError(f"{data_dir} has no span directories, so no span "
                           f"{span}")
    return data_dir
  if span is None:
    return spans[max(spans)]
  if span not in spans:
    raise IngestionError(
        f"{data_dir} has no {PREFIX}{span} directory (spans "
        f"{', '.join(str(s) for s in spans)})")
  return spans[span]


def window_dirs(data_dir: str, window: int = 0) -> List[str]:
  """The directories of the newest `window` spans (0: every span), oldest
  first; [data_dir] when it is flat."""
  found = span_dirs(data_dir)
  if not found:
    return [data_dir]
  numbers = sorted(found)
  return [found[s] for s in (numbers[-window:] if window else numbers)]


def newest_span(data_dir: str) -> Optional[int]:
  """The newest span's number; None for a flat directory."""
  return max(span_dirs(data_dir), default=None)


def previous_span(data_dir: str) -> Optional[int]:
  """The span before the newest (what the newest is checked against for
  drift); None for a flat directory or a single span."""
  numbers = sorted(span_dirs(data_dir))
  return numbers[-2] if len(numbers) > 1 else None


def catalog_dirs(data_dir: str) -> List[str]:
  """Where a span's missing catalog files are looked for: the spans from the
  newest back (empty for a flat directory)."""
  return [path for _, path in sorted(span_dirs(data_dir).items(),
                                     reverse=True)]
