"""The executor of MovieLensExampleGen: raw GroupLens files -> one
tf.Example per rating.

The ratings file is read split across Beam workers; movies and users, small
dimension tables, are joined as side inputs. Every malformed line (and every
rating whose movie or user is unknown) is counted and reported with its file
and line; more than `max_malformed_lines` fails the run. A movie or user
defined twice, or a movie rated twice by one user, is handled as
data.duplicates says (components/lib/duplicates.py).
"""
from __future__ import annotations

import collections
import dataclasses
import os
from typing import Any, Dict, Optional

import apache_beam as beam
import tensorflow as tf
from tfx.types import standard_component_specs

from components.example_gen import executor as base_executor
from components.lib import duplicates
from components.lib import features as F
from components.lib import ingestion
from components.lib import spans
from components.lib.ingestion import MalformedLine, MalformedLineError
from components.lib.movielens_formats import Movie, MovieLensFiles, Rating, User
from components.lib.movielens_formats import detect_files
from components.lib.schema_domains import SchemaDomains
from components.lib.settings import DUPLICATES_FAIL

SPLIT = "ratings"
# Execution parameters: data.layout and data.encoding ("": detected).
LAYOUT = "layout"
ENCODING = "encoding"


def _bytes(*values: str) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(
      value=[v.encode("utf-8") for v in values]))


def _ints(*values: int) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _features(feature: Dict[str, tf.train.Feature],
              domains: Optional[SchemaDomains]) -> bytes:
  if domains:
    domains.check(feature)
  return tf.train.Features(feature=feature).SerializeToString()


def rating_features(rating: Rating, offset: int,
                    domains: Optional[SchemaDomains] = None) -> bytes:
  return _features({
      F.USER_ID: _bytes(rating.user_id),
      F.ITEM_ID: _bytes(rating.item_id),
      F.RATING: tf.train.Feature(
          float_list=tf.train.FloatList(value=[rating.rating])),
      F.TIMESTAMP: _ints(rating.timestamp),
      F.FILE_OFFSET: _ints(offset),
  }, domains)


def movie_features(movie: Movie,
                   domains: Optional[SchemaDomains] = None) -> bytes:
  feature = {F.ITEM_TITLE: _bytes(movie.title),
             F.ITEM_GENRES: _bytes(*movie.genres)}
  if movie.year is not None:
    feature[F.ITEM_YEAR] = _ints(movie.year)
  return _features(feature, domains)


def user_features(user: User, domains: Optional[SchemaDomains] = None) -> bytes:
  return _features({
      F.USER_GENDER: _bytes(user.gender),
      F.USER_AGE: _ints(user.age),
      F.USER_OCCUPATION: _bytes(user.occupation),
      F.USER_ZIPCODE: _bytes(user.zipcode),
  }, domains)


class _JoinRating:
  """Parses a ratings line and joins its movie (and user, if there are users).

  Side inputs map ids to serialized Features (see base_executor.serialized_example).
  """

  def __init__(self, files: MovieLensFiles,
               domains: Optional[SchemaDomains] = None):
    self._parse = files.format.parse_rating
    self._domains = domains
    self._movies_file = os.path.basename(files.movies)
    self._users_file = os.path.basename(files.users) if files.users else None

  def __call__(self, text: str, offset: int, movies: Dict[str, bytes],
               users: Dict[str, bytes],
               rejected_movies: Dict[str, MalformedLine],
               rejected_users: Dict[str, MalformedLine]) -> bytes:
    rating = self._parse(text)
    movie = movies.get(rating.item_id)
    if movie is None:
      raise MalformedLineError(_missing(
          "movie", rating.item_id, self._movies_file, rejected_movies))
    parts = [rating_features(rating, offset, self._domains), movie]
    if self._users_file:
      user = users.get(rating.user_id)
      if user is None:
        raise MalformedLineError(_missing(
            "user", rating.user_id, self._users_file, rejected_users))
      parts.append(user)
    return base_executor.serialized_example(*parts)


def _missing(what: str, key: str, file_name: str,
             rejected: Dict[str, MalformedLine]) -> str:
  """Why a rating's movie or user is missing: the catalog line that defined
  it was rejected (the root cause, named), or there is none."""
  line = rejected.get(key)
  if line is None:
    return f"{what} id {key} is not in {file_name}"
  return (f"{what} id {key} is not in {file_name}: line {line.line} of "
          f"{file_name}, which defines it, was rejected ({line.reason})")


def _rejected_by_id(malformed, separator: str, name: str):
  """The rejected lines of a catalog file by the id their first field holds
  (when it is one): a side input."""
  def by_id(line: MalformedLine):
    key = line.text.split(separator, 1)[0].strip()
    if key.isascii() and key.isdigit():
      yield key, line
  return beam.pvalue.AsDict(malformed | f"ById{name}" >> beam.FlatMap(by_id))


def _keyed(parse, serialize, domains: Optional[SchemaDomains]):
  """(text, offset) -> (id, serialized Features), for joining as a side input."""
  def parse_keyed(text: str, offset: int):  # pylint: disable=unused-argument
    value = parse(text)
    return value[0], serialize(value, domains)
  return parse_keyed


class _ReadCatalog(beam.DoFn):
  """Reads a catalog file (movies, users: small) whole, in one worker:
  parses each line and applies data.duplicates to an id defined on several
  lines, which needs all of them. Outputs (id, serialized features); the
  rejected lines (with line numbers) to MALFORMED: bad lines and, under
  "fail", every definition of a duplicated id; under "first"/"last", the
  definitions left out to duplicates.DEFINITIONS."""

  def __init__(self, what: str, parse, encoding: str, skip_first_line: bool,
               policy: str):
    super().__init__()
    self._what = what
    self._parse = ingestion.ParseLines(parse, encoding, skip_first_line)
    self._policy = policy

  def process(self, path: str):
    definitions: Dict[str, list] = {}
    offset = 0
    with tf.io.gfile.GFile(path, "rb") as f:
      for number, raw in enumerate(f, start=1):
        record = ingestion.LineRecord(path, offset, raw.rstrip(b"\r\n"))
        offset += len(raw)
        for out in self._parse.process(record):
          if isinstance(out, beam.pvalue.TaggedOutput):
            yield beam.pvalue.TaggedOutput(out.tag, dataclasses.replace(
                out.value, line=number))
          else:
            key, features = out
            definitions.setdefault(key, []).append(
                (number, record, features))
    name = os.path.basename(path)
    tag = duplicates.reported_kind(self._policy, duplicates.DEFINITIONS)
    for key, found in definitions.items():
      if len(found) == 1:
        yield key, found[0][2]
        continue
      kept, left_out = duplicates.resolve(found, self._policy)
      if kept:
        yield key, kept[2]
      reason = duplicates.reason(
          f"{self._what} id {key} is defined", len(found), name, self._policy,
          lines=", ".join(str(n) for n, _, _ in found),
          kept=f"line {kept[0]}" if kept else "")
      for number, record, _ in left_out:
        yield beam.pvalue.TaggedOutput(tag, MalformedLine(
            record.path, record.offset, reason,
            record.text.decode(self._parse.encoding, errors="replace"),
            line=number))


class _RatingKey:
  """A ratings line -> (user id, movie id): what may appear once."""

  def __init__(self, files: MovieLensFiles):
    self._parse = files.format.parse_rating

  def __call__(self, text: str):
    rating = self._parse(text)
    return rating.user_id, rating.item_id


def _rated(key) -> str:
  return f"user {key[0]} rated movie {key[1]}"


@beam.ptransform_fn
def ReadMovieLens(pipeline: beam.Pipeline, files: MovieLensFiles,  # pylint: disable=invalid-name
                  duplicates_policy: str = DUPLICATES_FAIL,
                  domains: Optional[SchemaDomains] = None,
                  spill_dir: str = "", bucket_bytes: int = 0):
  """-> {"examples": serialized tf.Examples, "malformed": MalformedLines, one
  PCollection per stage (see ingestion.WriteIngestionSummary), and the
  lines `duplicates_policy` (data.duplicates) left out of the catalogs
  (duplicates.DEFINITIONS) and of the ratings (duplicates.INTERACTIONS)}.
  With `domains`, a value outside the curated schema's domain is a
  malformed line. Finding ratings of one movie by one user groups the
  ratings' keys through `spill_dir` (duplicates.FindDuplicates)."""
  fmt = files.format

  def catalog(name: str, what: str, path: str, parse):
    return (
        pipeline
        | f"{name}File" >> beam.Create([path])
        | f"Read{name}" >> beam.ParDo(_ReadCatalog(
            what, parse, files.encoding(path), fmt.header, duplicates_policy)
        ).with_outputs(ingestion.MALFORMED, duplicates.DEFINITIONS,
                       main="parsed"))

  movies = catalog("Movies", "movie", files.movies,
                   _keyed(fmt.parse_movie, movie_features, domains))
  reported = collections.defaultdict(list)
  reported[ingestion.MALFORMED].append(movies[ingestion.MALFORMED])
  reported[duplicates.DEFINITIONS].append(movies[duplicates.DEFINITIONS])
  if files.users:
    users = catalog("Users", "user", files.users,
                    _keyed(fmt.parse_user, user_features, domains))
    reported[ingestion.MALFORMED].append(users[ingestion.MALFORMED])
    reported[duplicates.DEFINITIONS].append(users[duplicates.DEFINITIONS])
    users_dict = beam.pvalue.AsDict(users.parsed)
    rejected_users = _rejected_by_id(users[ingestion.MALFORMED],
                                     fmt.separator, "Users")
  else:
    users_dict = rejected_users = beam.pvalue.AsDict(
        pipeline | "NoUsers" >> beam.Create([]))
  encoding = files.encoding(files.ratings)
  skip, repeated = pipeline | "FindDuplicateRatings" >> duplicates.FindDuplicates(  # pylint: disable=no-value-for-parameter
      [files.ratings], _RatingKey(files), _rated, duplicates_policy,
      encoding=encoding, skip_first_line=fmt.header, spill_dir=spill_dir,
      bucket_bytes=bucket_bytes)
  reported[duplicates.reported_kind(
      duplicates_policy, duplicates.INTERACTIONS)].append(repeated)
  ratings = duplicates.skip_lines(
      pipeline | "ReadRatings" >> ingestion.ReadLinesWithOffsets(files.ratings),
      skip, "SkipDuplicateRatings")
  ratings = ratings | "ParseRatings" >> beam.ParDo(
      ingestion.ParseLines(_JoinRating(files, domains), encoding,
                           skip_first_line=fmt.header),
      movies=beam.pvalue.AsDict(movies.parsed), users=users_dict,
      rejected_movies=_rejected_by_id(
          movies[ingestion.MALFORMED], fmt.separator, "Movies"),
      rejected_users=rejected_users,
  ).with_outputs(ingestion.MALFORMED, main="parsed")
  reported[ingestion.MALFORMED].append(ratings[ingestion.MALFORMED])
  return {"examples": ratings.parsed,
          **{kind: tuple(lines) for kind, lines in reported.items()}}


def movielens_files(exec_properties: Dict[str, Any]) -> MovieLensFiles:
  """The input files, their layout and encodings, as the settings say."""
  return detect_files(
      base_executor.span_directory(exec_properties),
      exec_properties.get(LAYOUT) or "", exec_properties.get(ENCODING) or "",
      spans.catalog_dirs(
          exec_properties[standard_component_specs.INPUT_BASE_KEY]))


@beam.ptransform_fn
def _MovieLensToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
                        split_pattern: str):  # pylint: disable=invalid-name,unused-argument
  """The ExampleGen hook: reads every file of the detected layout (the split
  pattern only feeds the driver's input fingerprint) and writes the summary."""
  files = movielens_files(exec_properties)
  read = pipeline | "ReadMovieLens" >> ReadMovieLens(  # pylint: disable=no-value-for-parameter
      files, exec_properties.get(base_executor.DUPLICATES_POLICY)
      or DUPLICATES_FAIL, base_executor.schema_domains(exec_properties),
      exec_properties[base_executor.SPILL_DIR],
      int(exec_properties.get(base_executor.GROUP_BUCKET_BYTES) or 0))
  _ = read | "Summarize" >> ingestion.WriteIngestionSummary(
      exec_properties[base_executor.REPORT_DIR])
  return read["examples"]


class Executor(base_executor.RawExampleGenExecutor):
  """Reads a MovieLens directory; writes the single split `ratings`."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _MovieLensToExample

  def describe(self, exec_properties: Dict[str, Any]) -> Dict[str, Any]:
    files = movielens_files(exec_properties)
    return {"format": files.format.name, "files": list(files.paths),
            # The rows the ratings refer to.
            "catalogs": [p for p in (files.movies, files.users) if p],
            "encodings": {path: f"{encoding} ({why})" for path, (
                encoding, why) in files.encodings.items()}}
