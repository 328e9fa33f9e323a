"""Reading raw text files in Beam with byte offsets, and reporting bad lines.

Beam's ReadFromText splits large files across workers but does not say where a
line came from. Reporting a malformed line by file and line number needs its
position, so `ReadLinesWithOffsets` is a splittable file source that yields
each line with its byte offset; the few offsets of malformed lines are turned
into line numbers after the Beam job (`resolve_line_numbers`), which reads the
file only up to the last bad line and only when there is one.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import re
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple

import apache_beam as beam
from apache_beam.io import concat_source
from apache_beam.io import filebasedsource
import tensorflow as tf

from components.lib.errors import InputError

MALFORMED = "malformed"
# Reported lines kept verbatim in the report, per file and kind (all of
# them are counted, per file and reason).
MAX_REPORTED_LINES = 100
# Lines a failure message shows (the report has the rest).
MAX_SHOWN_LINES = 10


class IngestionError(InputError):
  """Raw input that cannot be ingested: missing, empty or too malformed."""


@dataclasses.dataclass(frozen=True)
class LineRecord:
  path: str
  offset: int
  text: bytes


@dataclasses.dataclass(frozen=True)
class MalformedLine:
  path: str
  offset: int
  reason: str
  text: str
  line: Optional[int] = None  # 1-based, filled in by resolve_line_numbers

  def describe(self) -> str:
    where = f"{self.path}:{self.line}" if self.line else (
        f"{self.path} (byte {self.offset})")
    return f"{where}: {self.reason}: {self.text[:200]!r}"


class MalformedLineError(ValueError):
  """Raised by a line parser; the message is the reason the line is bad."""


# What a tf.train.Example's Int64List and FloatList hold: a value beyond
# them fails the proto's own check with no file or line.
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
FLOAT32_MAX = 3.4028234663852886e38


def parse_int(text: str, what: str) -> int:
  """A field written to an Int64List: an integer within int64."""
  try:
    number = int(text.strip())
  except ValueError:
    raise MalformedLineError(f"{what} {text!r} is not an integer") from None
  if not INT64_MIN <= number <= INT64_MAX:
    raise MalformedLineError(
        f"{what} {text.strip()!r} is beyond the 64-bit integer range")
  return number


def parse_float(text: str, what: str) -> float:
  """A field written to a FloatList: finite, within float32."""
  try:
    number = float(text.strip())
  except ValueError:
    raise MalformedLineError(f"{what} {text!r} is not a number") from None
  if not math.isfinite(number):
    raise MalformedLineError(f"{what} {text.strip()!r} is not finite")
  if abs(number) > FLOAT32_MAX:
    raise MalformedLineError(
        f"{what} {text.strip()!r} is beyond the 32-bit float range")
  return number


class _OffsetLineSource(filebasedsource.FileBasedSource):
  """Splittable source of (path, byte offset, line) for uncompressed files."""

  def read_records(self, file_name: str,
                   offset_range_tracker) -> Iterator[LineRecord]:
    start = offset_range_tracker.start_position()
    with self.open_file(file_name) as f:
      if start > 0:
        # The line that crosses `start` belongs to the previous range: skip to
        # the first line that begins at or after `start`.
        f.seek(start - 1)
        start += len(f.readline()) - 1
      position = start
      while offset_range_tracker.try_claim(position):
        line = f.readline()
        if not line:
          break
        yield LineRecord(file_name, position, line.rstrip(b"\r\n"))
        position += len(line)


class ReadLinesWithOffsets(beam.PTransform):
  """Reads text files as LineRecords, split across workers.

  Several files are read by one source (not one read per file and a
  Flatten), so that a single ParDo can parse them all: see
  `components/lib/disk_group.py` for why multi-producer Flattens are avoided.
  """

  def __init__(self, *paths: str):
    super().__init__()
    self._paths = paths

  def expand(self, pbegin):
    sources = [_OffsetLineSource(p, splittable=True, validate=True)
               for p in self._paths]
    return pbegin | beam.io.Read(
        sources[0] if len(sources) == 1 else concat_source.ConcatSource(sources))


def require_file(path: str, what: str) -> str:
  """Returns path if it names a non-empty file, else a clear IngestionError."""
  if not tf.io.gfile.exists(path):
    raise IngestionError(f"{what} not found: {path}")
  if tf.io.gfile.isdir(path):
    raise IngestionError(f"{what} is a directory, not a file: {path}")
  if tf.io.gfile.stat(path).length == 0:
    raise IngestionError(f"{what} is empty: {path}")
  return path


class ParseLines(beam.DoFn):
  """Applies `parse(text, offset, **side_inputs) -> value` (with
  `with_path`, `parse(text, offset, path)`); lines it rejects with
  MalformedLineError go to the MALFORMED output.

  Blank lines carry no record and are skipped; `skip_first_line` drops a
  header already checked by format detection.
  """

  def __init__(self, parse, encoding: str, skip_first_line: bool = False,
               with_path: bool = False):
    super().__init__()
    self._parse = parse
    self.encoding = encoding
    self._skip_first_line = skip_first_line
    self._with_path = with_path

  def process(self, record: LineRecord, **side_inputs):
    if self._skip_first_line and record.offset == 0:
      return
    if not record.text.strip():
      return
    try:
      text = record.text.decode(self.encoding)
    except UnicodeDecodeError as e:
      yield beam.pvalue.TaggedOutput(MALFORMED, MalformedLine(
          record.path, record.offset, f"not valid {self.encoding}: {e.reason}",
          record.text.decode("latin-1")))
      return
    args = (text, record.offset) + ((record.path,) if self._with_path else ())
    try:
      yield self._parse(*args, **side_inputs)
    except MalformedLineError as e:
      yield beam.pvalue.TaggedOutput(
          MALFORMED, MalformedLine(record.path, record.offset, str(e), text))


# A value inside a reason: a quoted string, or a number standing alone
# ("64-bit" is part of the reason's wording).
_VALUE = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|"
                    r"(?<![\w.-])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w-])")


def reason_kind(reason: str) -> str:
  """A reason with its values left out: what reported lines are totalled
  by ("movie id 12 is not in u.item" -> "movie id … is not in u.item")."""
  return _VALUE.sub("…", reason)


class WriteIngestionSummary(beam.PTransform):
  """Counts examples and reported lines; keeps the first lines of each kind.

  Input: {"examples": PCollection, "malformed": PCollection[MalformedLine],
  and optionally more kinds of reported lines (rows dropped by a rule, say)
  under their own names}. A kind read by several stages (one per file, say)
  may be a tuple of PCollections: each is counted on its own and the counts
  are merged here, because a Flatten of PCollections from different stages
  can lose elements on Beam's FnApiRunner (components/lib/disk_group.py).
  Each part keeps its first MAX_REPORTED_LINES lines (so that a file with
  few bad lines is not crowded out by one with many) and its totals per
  reason kind. Writes one JSON file `summary` into report_dir, read back by
  `read_ingestion_summary` once the Beam job is done.
  """

  def __init__(self, report_dir: str):
    super().__init__()
    self._report_dir = report_dir

  def expand(self, inputs):
    examples = inputs["examples"] | "CountExamples" >> beam.combiners.Count.Globally()
    side_inputs = {}
    parts: Dict[str, List[str]] = {}
    for kind in sorted(k for k in inputs if k != "examples"):
      pcolls = inputs[kind]
      if not isinstance(pcolls, (tuple, list)):
        pcolls = (pcolls,)
      for i, lines in enumerate(pcolls):
        part = f"{kind}#{i}"
        parts.setdefault(kind, []).append(part)
        side_inputs[part] = beam.pvalue.AsSingleton(
            lines | f"Count_{part}" >> beam.combiners.Count.Globally())
        side_inputs[f"{part}_lines"] = beam.pvalue.AsSingleton(
            lines
            | f"First_{part}" >> beam.combiners.Top.Of(
                MAX_REPORTED_LINES, key=lambda m: (m.path, m.offset),
                reverse=True))
        side_inputs[f"{part}_totals"] = beam.pvalue.AsList(
            lines
            | f"Kinds_{part}" >> beam.Map(
                lambda m: (m.path, reason_kind(m.reason)))
            | f"Totals_{part}" >> beam.combiners.Count.PerElement())

    def summary(n, **counted):
      merged = {"examples": n}
      for kind, names in parts.items():
        merged[kind] = sum(counted[p] for p in names)
        merged[f"{kind}_lines"] = [dataclasses.asdict(m) for m in sorted(
            (m for p in names for m in counted[f"{p}_lines"]),
            key=lambda m: (m.path, m.offset))]
        totals = collections.Counter()
        for p in names:
          for key, count in counted[f"{p}_totals"]:
            totals[tuple(key)] += count
        merged[f"{kind}_totals"] = [[path, reason, count] for (
            path, reason), count in sorted(totals.items())]
      return json.dumps(merged)

    return (
        examples
        | "Summary" >> beam.Map(summary, **side_inputs)
        | "Write" >> beam.io.WriteToText(
            os.path.join(self._report_dir, "summary"), shard_name_template=""))


class Reported(NamedTuple):
  """The lines of one kind: how many, the first ones of each file (with
  line numbers), and (path, reason kind, count) totals."""
  count: int
  lines: List[MalformedLine]
  totals: List[Tuple[str, str, int]]


@dataclasses.dataclass
class IngestionSummary:
  examples: int
  # kind ("malformed", or a rule's name) -> its reported lines
  reported: Dict[str, Reported]

  @property
  def malformed(self) -> int:
    return self.reported[MALFORMED].count

  @property
  def malformed_lines(self) -> List[MalformedLine]:
    return self.reported[MALFORMED].lines


def read_ingestion_summary(report_dir: str) -> IngestionSummary:
  with tf.io.gfile.GFile(os.path.join(report_dir, "summary")) as f:
    summary = json.loads(f.read())
  kinds = [k for k in summary if k != "examples"
           and not k.endswith(("_lines", "_totals"))]
  return IngestionSummary(summary["examples"], {
      k: Reported(summary[k], resolve_line_numbers(
          MalformedLine(**m) for m in summary[f"{k}_lines"]),
                  [tuple(t) for t in summary[f"{k}_totals"]])
      for k in kinds})


def resolve_line_numbers(
    malformed: Iterable[MalformedLine]) -> List[MalformedLine]:
  """Fills in 1-based line numbers by counting newlines before each offset."""
  by_path: Dict[str, List[MalformedLine]] = {}
  for m in malformed:
    by_path.setdefault(m.path, []).append(m)
  resolved = []
  for path, lines in by_path.items():
    offsets = sorted({m.offset for m in lines})
    line_at = {}
    newlines, read = 0, 0
    with tf.io.gfile.GFile(path, "rb") as f:
      for offset in offsets:
        while read < offset:
          chunk = f.read(min(1 << 20, offset - read))
          if not chunk:
            break
          newlines += chunk.count(b"\n")
          read += len(chunk)
        line_at[offset] = newlines + 1
    resolved.extend(dataclasses.replace(m, line=line_at[m.offset]) for m in lines)
  return sorted(resolved, key=lambda m: (m.path, m.offset))


def root_causes_first(lines: List[MalformedLine],
                      catalogs: Iterable[str]) -> List[MalformedLine]:
  """Lines of the catalog files (movies, users: the rows other lines refer
  to) before the others, each file in line order."""
  catalogs = set(catalogs)
  return sorted(lines, key=lambda m: (m.path not in catalogs, m.path,
                                      m.offset))


def check_malformed(reported: Reported, tolerance: int, setting: str,
                    catalogs: Iterable[str] = (), report_path: str = "") -> None:
  """Fails when more lines are malformed than tolerated: the totals per file
  and reason, then the first lines, catalog files first, and where the
  full report is."""
  if reported.count <= tolerance:
    return
  catalogs = set(catalogs)
  totals = sorted(reported.totals, key=lambda t: (t[0] not in catalogs, t[0],
                                                  -t[2], t[1]))
  lines = [f"  {path}: {count} line{'s' if count > 1 else ''}: {reason}"
           for path, reason, count in totals]
  shown = root_causes_first(reported.lines, catalogs)[:MAX_SHOWN_LINES]
  lines += [f"  {m.describe()}" for m in shown]
  if reported.count > len(shown):
    lines.append(f"  ... and {reported.count - len(shown)} more")
  if report_path:
    lines.append(f"  the full report: {report_path}")
  raise IngestionError(
      f"{reported.count} malformed line(s), more than {setting}={tolerance}:\n"
      + "\n".join(lines))
