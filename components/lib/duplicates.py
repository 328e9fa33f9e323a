"""Rows given more than once in raw files, handled as data.duplicates says.

Two rows for one key cannot both be right unless they are the same line: a
movie or user defined twice in its catalog file, an Ali-CCP common-features
row repeated, a user rating one movie on two lines, an Ali-CCP sample id on
two lines. The policy is one of settings.DUPLICATES: `fail` makes every row
of the key a malformed line (which one is right is not knowable);
`first` and `last` keep that row in file order and report the others under
their kind. Either way each row is counted in the ingestion report.

Catalog files are read whole by one worker, which applies `resolve` itself.
Interaction files are read split across workers: `FindDuplicates` reads them
once more for their keys alone and groups those (through disk, as the join
does: components/lib/disk_group.py), so that the examples never wait in the
runner's memory; the parse then skips the lines it returns.
"""
from __future__ import annotations

import os
from typing import Callable, Hashable, List, Optional, Sequence, Tuple, TypeVar

import apache_beam as beam

from components.lib import disk_group
from components.lib import ingestion
from components.lib.ingestion import MalformedLine
from components.lib.settings import DUPLICATES_FAIL, DUPLICATES_FIRST

# Reported kinds: rows that data.duplicates=first or last left out.
DEFINITIONS = "duplicate_definitions"  # of a catalog (movies, users, ...)
INTERACTIONS = "duplicate_interactions"  # of the interactions file

T = TypeVar("T")


def resolve(rows: Sequence[T], policy: str) -> Tuple[Optional[T], List[T]]:
  """Rows of one key in file order -> (the row kept, or None under `fail`;
  the rows rejected or left out)."""
  if policy == DUPLICATES_FAIL:
    return None, list(rows)
  kept = rows[0] if policy == DUPLICATES_FIRST else rows[-1]
  return kept, [r for r in rows if r is not kept]


def reason(subject: str, count: int, file_name: str, policy: str,
           lines: str = "", kept: str = "") -> str:
  """Why a row is rejected or left out: `subject` says what repeats ("movie
  id 2 is defined", "user 1 rated movie 3"); `lines` and `kept` name the
  lines where they are known."""
  where = f"{subject} on {count} lines of {file_name}" + (
      f" ({lines})" if lines else "")
  if policy == DUPLICATES_FAIL:
    return f"{where}; data.duplicates=first or last keeps one"
  return f"{where}; data.duplicates={policy} keeps {kept or 'the ' + policy}"


def reported_kind(policy: str, left_out_kind: str) -> str:
  """The kind rows are reported under: malformed under `fail`."""
  return ingestion.MALFORMED if policy == DUPLICATES_FAIL else left_out_kind


class _Keyed:
  """A line (as ingestion.ParseLines gives it) -> ((path, key), (offset,
  text))."""

  def __init__(self, key_of: Callable[[str], Hashable]):
    self._key_of = key_of

  def __call__(self, text: str, offset: int, path: str):
    return (path, self._key_of(text)), (offset, text)


class _Resolve(beam.DoFn):
  """A key's lines -> the (path, offset) of each line to skip, and each of
  them reported (malformed under `fail`, else INTERACTIONS)."""

  def __init__(self, subject: Callable[[Hashable], str], policy: str):
    super().__init__()
    self._subject = subject
    self._policy = policy
    self._kind = reported_kind(policy, INTERACTIONS)

  def process(self, grouped):
    (path, key), lines = grouped
    if len(lines) < 2:
      return
    lines = sorted(lines)
    identical = len({text for _, text in lines}) == 1
    why = reason(self._subject(key) + (" identically" if identical else ""),
                 len(lines), os.path.basename(path), self._policy)
    _, skipped = resolve(lines, self._policy)
    for offset, text in skipped:
      yield (path, offset), True
      yield beam.pvalue.TaggedOutput(self._kind, MalformedLine(
          path, offset, why, text))


@beam.ptransform_fn
def FindDuplicates(pipeline: beam.Pipeline, paths: Sequence[str],  # pylint: disable=invalid-name
                   key_of: Callable[[str], Hashable],
                   subject: Callable[[Hashable], str], policy: str,
                   encoding: str = "utf-8", skip_first_line: bool = False,
                   spill_dir: str = "", bucket_bytes: int = 0):
  """Lines of `paths` whose key (`key_of(text)`, within one file) is on
  another line too -> (((path, offset), True) for each line the parse must
  skip, those lines as MalformedLines to report under
  reported_kind(policy, INTERACTIONS)).

  Lines without a key (the header, blank, undecodable or malformed lines)
  are left to the parse, which reports them. `subject(key)` words the
  reason ("user 1 rated movie 3"). The grouping spills to `spill_dir` in
  buckets of about `bucket_bytes` of input (0: Beam's GroupByKey).
  """
  keyed = (
      pipeline
      | "ReadKeys" >> ingestion.ReadLinesWithOffsets(*paths)
      | "Key" >> beam.ParDo(ingestion.ParseLines(
          _Keyed(key_of), encoding, skip_first_line, with_path=True)
      ).with_outputs(ingestion.MALFORMED, main="keyed"))
  reported = reported_kind(policy, INTERACTIONS)
  found = (
      disk_group.group_by_key(
          keyed.keyed, os.path.join(spill_dir, "duplicates"),
          disk_group.buckets_for_files(paths, bucket_bytes), "ByKey")
      | "Resolve" >> beam.ParDo(_Resolve(subject, policy)).with_outputs(
          reported, main="skip"))
  return found.skip, found[reported]


def skip_lines(records: beam.PCollection, skip: beam.PCollection,
               label: str) -> beam.PCollection:
  """LineRecords without those FindDuplicates said to skip."""
  return records | label >> beam.Filter(
      lambda r, skipped: (r.path, r.offset) not in skipped,
      skipped=beam.pvalue.AsDict(skip))
