"""AliCCPExampleGen: raw Ali-CCP files -> one tf.Example per impression.

Each split's skeleton (impressions) is joined with its common features (the
user side) on (split, `common_feature_index`), so that neither file is held
whole by one worker: through spill files on disk, a bucket of keys at a time
(`components/lib/disk_group.py`, buckets of `data.group_bucket_bytes` of input,
which keeps the DirectRunner's memory flat), or with Beam's GroupByKey
when that is 0 (a distributed runner's shuffle). Every impression keeps its
source split and sample id, which order a user's impressions (the data has
no timestamps), its click and conversion labels, and its named features
(`components/lib/aliccp_format.py`).

Reported with file and line, and counted:
* malformed lines (fails the run above `data.max_malformed_lines`);
* impressions whose key has no common-features row (dropped);
* impressions with click 0 and conversion 1 (dropped: a conversion follows a
  click, so the row is inconsistent; common Ali-CCP loaders do the same);
* a key with several common-features rows, and a sample id on several lines
  of its skeleton: as `data.duplicates` says (components/lib/duplicates.py;
  by default each such line is malformed).
"""
from __future__ import annotations

import collections
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
import tensorflow as tf

from components.example_gen import executor as base_executor
from components.lib import aliccp_format as A
from components.lib import disk_group
from components.lib import duplicates
from components.lib import ingestion
from components.lib.ingestion import MalformedLine
from components.lib.schema_domains import SchemaDomains
from components.lib.settings import DUPLICATES_FAIL

SPLIT = "impressions"
# Features every impression example has, beside the named ones.
SOURCE_SPLIT = "source_split"
SAMPLE_ID = "sample_id"
CLICK = "click"
CONVERSION = "conversion"
UNMATCHED = "unmatched_key"


def _features(named: Dict[str, List[float]],
              domains: Optional[SchemaDomains]) -> bytes:
  feature = {}
  for name, values in named.items():
    if name.endswith(A.WEIGHT_SUFFIX):
      feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    else:
      feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
  if domains:
    domains.check(feature)
  return tf.train.Features(feature=feature).SerializeToString()


def impression_features(split: str, row: A.SkeletonRow,
                        domains: Optional[SchemaDomains] = None) -> bytes:
  named: Dict[str, Any] = A.named_features(row.features, A.SKELETON_FIELDS)
  named.update({SAMPLE_ID: [row.sample_id], CLICK: [row.click],
                CONVERSION: [row.conversion]})
  return _features(named, domains) + tf.train.Features(feature={
      SOURCE_SPLIT: tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[split.encode()]))}).SerializeToString()


def user_features(row: A.CommonRow,
                  domains: Optional[SchemaDomains] = None) -> bytes:
  return _features(A.named_features(row.features, A.USER_FIELDS), domains)


IMPRESSION, USER = 0, 1  # tags of the grouped values


class _ParseLine:
  """A line of any of the files -> ((split, key), (tag, offset, ...)).

  One parser for all files, so that one ParDo reads them and one grouping
  joins them (no Flatten of per-file PCollections: components/lib/disk_group.py).
  """

  def __init__(self, files: Dict[str, Tuple[str, str]],
               domains: Optional[SchemaDomains] = None):
    self._domains = domains
    self._kinds = {}
    for split, (skeleton, common) in files.items():
      self._kinds[skeleton] = (split, IMPRESSION)
      self._kinds[common] = (split, USER)

  def __call__(self, text: str, offset: int, path: str):
    split, tag = self._kinds[path]
    if tag == IMPRESSION:
      row = A.parse_skeleton(text)
      inconsistent = row.click == 0 and row.conversion == 1
      return (split, row.key), (tag, offset, inconsistent,
                                impression_features(split, row, self._domains))
    row = A.parse_common_features(text)
    return (split, row.key), (tag, offset, user_features(row, self._domains))


class _Join(beam.DoFn):
  """One key's impressions and common-features rows -> examples and reports.
  Several rows for the key are resolved by data.duplicates (`policy`)."""

  def __init__(self, files: Dict[str, Tuple[str, str]], policy: str):
    super().__init__()
    self._files = files
    self._policy = policy

  def process(self, keyed) -> Iterable[Any]:
    (split, key), values = keyed
    skeleton, common = self._files[split]
    name = os.path.basename(common)
    users = sorted(v[1:] for v in values if v[0] == USER)
    missing = f"common_feature_index {key} has no row in {name}"
    if len(users) > 1:
      kept, left_out = duplicates.resolve(users, self._policy)
      reason = duplicates.reason(
          f"common_feature_index {key} is defined", len(users), name,
          self._policy)
      for offset, _ in left_out:
        yield beam.pvalue.TaggedOutput(
            duplicates.reported_kind(self._policy, duplicates.DEFINITIONS),
            MalformedLine(common, offset, reason, key))
      users = [kept] if kept else []
      missing = (f"common_feature_index {key}'s rows in {name} were "
                 "rejected as duplicates")
    for _, offset, inconsistent, impression in sorted(
        v for v in values if v[0] == IMPRESSION):
      if not users:
        yield beam.pvalue.TaggedOutput(UNMATCHED, MalformedLine(
            skeleton, offset, missing, key))
      elif inconsistent:
        yield beam.pvalue.TaggedOutput(A.INCONSISTENT, MalformedLine(
            skeleton, offset, "click 0 with conversion 1", key))
      else:
        yield base_executor.serialized_example(impression, users[0][1])


def _sample_id(text: str) -> int:
  """A skeleton line -> its sample id: what may appear once per split."""
  return ingestion.parse_int(text.split(",", 1)[0], "sample_id")


def _sample(sample_id: int) -> str:
  return f"sample_id {sample_id} is"


@beam.ptransform_fn
def ReadAliCCP(pipeline: beam.Pipeline, files: Dict[str, Tuple[str, str]],  # pylint: disable=invalid-name
               spill_dir: str = "", group_bucket_bytes: int = 0,
               domains: Optional[SchemaDomains] = None,
               duplicates_policy: str = DUPLICATES_FAIL):
  """-> {"examples": serialized tf.Examples, and the reported lines by kind}.

  With `group_bucket_bytes` the join spills to files under `spill_dir` (the
  caller deletes it), in buckets of about that many bytes of input; with 0
  it is Beam's GroupByKey. With `domains`, a value outside the curated
  schema's domain is a malformed line. `duplicates_policy`: data.duplicates.
  """
  paths = [p for split in sorted(files) for p in files[split]]
  skip, repeated = pipeline | "FindDuplicateSamples" >> duplicates.FindDuplicates(  # pylint: disable=no-value-for-parameter
      [files[split][0] for split in sorted(files)], _sample_id, _sample,
      duplicates_policy, spill_dir=spill_dir, bucket_bytes=group_bucket_bytes)
  records = duplicates.skip_lines(
      pipeline | "Read" >> ingestion.ReadLinesWithOffsets(*paths), skip,
      "SkipDuplicateSamples")
  parsed = records | "Parse" >> beam.ParDo(ingestion.ParseLines(
      _ParseLine(files, domains), "utf-8", with_path=True)).with_outputs(
          ingestion.MALFORMED, main="parsed")
  buckets = disk_group.buckets_for_files(paths, group_bucket_bytes)
  definitions = duplicates.reported_kind(duplicates_policy,
                                         duplicates.DEFINITIONS)
  joined = (
      disk_group.group_by_key(parsed.parsed, spill_dir, buckets, "GroupByKey")
      | "Join" >> beam.ParDo(_Join(files, duplicates_policy)).with_outputs(
          UNMATCHED, A.INCONSISTENT, definitions, main="examples"))
  reported = collections.defaultdict(list)
  reported[ingestion.MALFORMED].append(parsed[ingestion.MALFORMED])
  for kind in (UNMATCHED, A.INCONSISTENT, definitions):
    reported[kind].append(joined[kind])
  reported[duplicates.reported_kind(
      duplicates_policy, duplicates.INTERACTIONS)].append(repeated)
  return {"examples": joined.examples,
          **{kind: tuple(lines) for kind, lines in reported.items()}}


@beam.ptransform_fn
def _AliCCPToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
                     split_pattern: str):  # pylint: disable=invalid-name,unused-argument
  files = A.detect_files(base_executor.span_directory(exec_properties))
  read = pipeline | "ReadAliCCP" >> ReadAliCCP(  # pylint: disable=no-value-for-parameter
      files, exec_properties[base_executor.SPILL_DIR],
      int(exec_properties.get(base_executor.GROUP_BUCKET_BYTES) or 0),
      base_executor.schema_domains(exec_properties),
      exec_properties.get(base_executor.DUPLICATES_POLICY) or DUPLICATES_FAIL)
  _ = read | "Summarize" >> ingestion.WriteIngestionSummary(
      exec_properties[base_executor.REPORT_DIR])
  return read["examples"]


class Executor(base_executor.RawExampleGenExecutor):
  """Reads an Ali-CCP directory; writes the single split `impressions`."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _AliCCPToExample

  def describe(self, exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    files = A.detect_files(base_executor.span_directory(exec_properties))
    return {"splits": sorted(files),
            "files": [p for split in sorted(files) for p in files[split]],
            # The rows the skeleton's impressions refer to.
            "catalogs": [files[split][1] for split in sorted(files)]}
