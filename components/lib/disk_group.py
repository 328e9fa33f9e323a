"""GroupByKey through files on disk: one bucket of keys in memory at a time.

Why not Beam's CoGroupByKey: the DirectRunner (in multi-processing mode too)
keeps every GroupByKey, CoGroupByKey and Reshuffle in the runner's memory, so
joining or grouping a large file there needs memory in proportion to the file
(measured: a GroupByKey over 200k and 2M lines held 264 and 747 MB). Here each
bundle spills its (key, value) pairs into `num_buckets` files by a stable hash
of the key; then each bucket's files are read back and grouped alone. Peak
memory is one bucket (about input / num_buckets) whatever the runner, and
only file names go through Beam's own GroupByKey. On a distributed runner
whose shuffle spills to disk (Dataflow, Flink, Spark) Beam's GroupByKey is
the natural choice; `group_by_key` picks it when num_buckets is 0.

The output has GroupByKey's shape: (key, [values]). Values keep no order;
callers sort where order matters. To join several inputs, tag the values
in the ParDo that produces them rather than flattening PCollections from
different stages: Beam 2.59's FnApiRunner (the DirectRunner in
multi-processing mode) can run the consumers of a multi-producer Flatten
before every producer has finished, and drops the late producers' elements
(apache/beam#26190; measured here on 1M Ali-CCP impressions: the join
made 999,515 examples, and 767,270 to 925,165 of them were written).
The spill files live under `temp_dir`, which the caller deletes after the
pipeline has run.
"""
from __future__ import annotations

import math
import struct
import uuid
import zlib
from typing import Dict, Iterable, List, Tuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.transforms import window

NAMESPACE = "disk_group"
_LENGTH = struct.Struct("<I")
_CODER = beam.coders.FastPrimitivesCoder()


def bucket_of(key, num_buckets: int) -> int:
  """Stable across processes and runs (Python's hash() is salted)."""
  return zlib.crc32(_CODER.encode(key)) % num_buckets


def buckets_for(input_bytes: int, bytes_per_bucket: int) -> int:
  """Buckets so that each holds about `bytes_per_bucket` of the input."""
  return max(1, math.ceil(input_bytes / bytes_per_bucket))


def buckets_for_files(patterns: Iterable[str], bytes_per_bucket: int) -> int:
  """Buckets for grouping what the files matching `patterns` hold
  (data.group_bucket_bytes); 0, Beam's GroupByKey, when bytes_per_bucket
  is 0."""
  if bytes_per_bucket <= 0:
    return 0
  return buckets_for(sum(
      file.size_in_bytes for match in FileSystems.match(list(patterns))
      for file in match.metadata_list), bytes_per_bucket)


class _Spill(beam.DoFn):
  """(key, value) -> spill files; emits (bucket, path) per file written."""

  def __init__(self, temp_dir: str, num_buckets: int):
    super().__init__()
    self._temp_dir, self._num_buckets = temp_dir, num_buckets
    self._records = Metrics.counter(NAMESPACE, "spilled_records")

  def start_bundle(self):
    self._files: Dict[int, Tuple[str, object]] = {}
    self._bundle = uuid.uuid4().hex

  def process(self, element):
    key, _ = element
    bucket = bucket_of(key, self._num_buckets)
    if bucket not in self._files:
      path = FileSystems.join(self._temp_dir,
                              f"bucket-{bucket:05d}-{self._bundle}")
      self._files[bucket] = (path, FileSystems.create(
          path, compression_type=CompressionTypes.UNCOMPRESSED))
    record = _CODER.encode(element)
    out = self._files[bucket][1]
    out.write(_LENGTH.pack(len(record)))
    out.write(record)
    self._records.inc()

  def finish_bundle(self):
    for bucket, (path, out) in sorted(self._files.items()):
      out.close()
      yield window.GlobalWindows.windowed_value((bucket, path))
    self._files = {}


def read_spill_file(path: str) -> Iterable[Tuple[object, object]]:
  """The (key, value) records of one spill file, in written order."""
  with FileSystems.open(path,
                        compression_type=CompressionTypes.UNCOMPRESSED) as f:
    while True:
      header = f.read(_LENGTH.size)
      if not header:
        return
      if len(header) != _LENGTH.size:
        raise IOError(f"{path}: truncated spill file")
      (length,) = _LENGTH.unpack(header)
      record = f.read(length)
      if len(record) != length:
        raise IOError(f"{path}: truncated spill file")
      yield _CODER.decode(record)


class _GroupBucket(beam.DoFn):
  """(bucket, spill paths) -> (key, [values]) for the bucket's keys."""

  def __init__(self):
    super().__init__()
    self._bucket_records = Metrics.distribution(NAMESPACE, "records_per_bucket")

  def process(self, bucket_paths):
    _, paths = bucket_paths
    groups: Dict[object, List] = {}
    records = 0
    for path in sorted(paths):
      for key, value in read_spill_file(path):
        groups.setdefault(key, []).append(value)
        records += 1
    self._bucket_records.update(records)
    yield from groups.items()


@beam.ptransform_fn
def DiskGroupByKey(pcoll: beam.PCollection, temp_dir: str,  # pylint: disable=invalid-name
                   num_buckets: int):
  """(key, value) -> (key, [values]).

  Keys and values must be encodable by Beam's FastPrimitivesCoder (ints,
  strings, bytes, bools, floats and tuples or lists of them).
  """
  return (
      pcoll
      | "Spill" >> beam.ParDo(_Spill(temp_dir, num_buckets))
      | "PathsByBucket" >> beam.GroupByKey()
      | "GroupBucket" >> beam.ParDo(_GroupBucket()))


def group_by_key(pcoll: beam.PCollection, temp_dir: str, num_buckets: int,
                 label: str) -> beam.PCollection:
  """Beam's GroupByKey when num_buckets is 0, else DiskGroupByKey."""
  if num_buckets <= 0:
    return pcoll | label >> beam.GroupByKey()
  return pcoll | label >> DiskGroupByKey(temp_dir, num_buckets)  # pylint: disable=no-value-for-parameter
