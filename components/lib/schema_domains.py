"""The curated schema's value domains, checked on each input line.

ExampleValidator compares statistics with the schema: it tells that some
rating is 6, never which line of which file holds it. The parsers check the
same domains line by line, read from the same schema file (one source of
truth), so such a line is reported like any malformed line: file, line,
value. ExampleValidator stays the second gate, for distributions and
presence, which no single line shows.
"""
from __future__ import annotations

import math
import os
from typing import Dict, FrozenSet, Optional, Tuple

from google.protobuf import text_format
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components.lib.ingestion import MalformedLineError

Bounds = Tuple[Optional[float], Optional[float]]


class SchemaDomains:
  """Integer and float ranges and string vocabularies of a schema's
  features; `check` rejects a value outside them."""

  def __init__(self, schema: schema_pb2.Schema, source: str):
    self.source = source
    named = {d.name: frozenset(d.value) for d in schema.string_domain}
    self.ranges: Dict[str, Bounds] = {}
    self.vocabularies: Dict[str, Tuple[str, FrozenSet[str]]] = {}
    for feature in schema.feature:
      kind = feature.WhichOneof("domain_info")
      if kind in ("int_domain", "float_domain"):
        domain = getattr(feature, kind)
        self.ranges[feature.name] = (
            domain.min if domain.HasField("min") else None,
            domain.max if domain.HasField("max") else None)
      elif kind == "bool_domain":
        self.ranges[feature.name] = (0, 1)
      elif kind == "domain":
        self.vocabularies[feature.name] = (feature.domain,
                                           named[feature.domain])
      elif kind == "string_domain":
        self.vocabularies[feature.name] = (
            feature.string_domain.name or feature.name,
            frozenset(feature.string_domain.value))

  @classmethod
  def read(cls, path: str) -> "SchemaDomains":
    with tf.io.gfile.GFile(path) as f:
      schema = text_format.Parse(f.read(), schema_pb2.Schema())
    # Named as the repository names it: schemas/<dataset>/schema.pbtxt.
    return cls(schema, "/".join(path.replace(os.sep, "/").split("/")[-3:]))

  def check(self, features: Dict[str, tf.train.Feature]) -> None:
    """Raises MalformedLineError for the first value outside its domain."""
    for name, feature in features.items():
      if name in self.ranges:
        low, high = self.ranges[name]
        values = (feature.int64_list.value if feature.HasField("int64_list")
                  else feature.float_list.value)
        for value in values:
          if math.isnan(value):
            raise MalformedLineError(f"{name} is NaN ({self.source} allows "
                                     "numbers only)")
          if low is not None and value < low:
            raise MalformedLineError(
                f"{name} {_number(value)} is below {_number(low)}, the "
                f"minimum in {self.source}")
          if high is not None and value > high:
            raise MalformedLineError(
                f"{name} {_number(value)} is above {_number(high)}, the "
                f"maximum in {self.source}")
      elif name in self.vocabularies:
        domain, allowed = self.vocabularies[name]
        for raw in feature.bytes_list.value:
          value = raw.decode("utf-8", errors="replace")
          if value not in allowed:
            raise MalformedLineError(
                f"{name} {value!r} is not in the domain {domain!r} of "
                f"{self.source}")


def _number(value: float) -> str:
  return str(int(value)) if float(value).is_integer() else f"{value:g}"
