"""MovieLensExampleGen: raw GroupLens files -> one tf.Example per rating.

A FileBasedExampleGen with its own executor, so TFX's driver fingerprints the
input files (a changed file invalidates the cache) and TFX writes the split.
The ratings file is read split across Beam workers; movies and users, small
dimension tables, are joined as side inputs. Every malformed line (and every
rating whose movie or user is unknown) is counted and reported with its file
and line; more than `max_malformed_lines` fails the run.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional

import apache_beam as beam
import tensorflow as tf
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs

from components import features as F
from components import ingestion
from components import raw_example_gen
from components.ingestion import MalformedLineError
from components.movielens_formats import Movie, MovieLensFiles, Rating, User
from components.movielens_formats import detect_files

SPLIT = "ratings"
MAX_MALFORMED_LINES = raw_example_gen.MAX_MALFORMED_LINES
REPORT_FILE = raw_example_gen.REPORT_FILE


def _bytes(*values: str) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(
      value=[v.encode("utf-8") for v in values]))


def _ints(*values: int) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


# An Example is one length-delimited field (1, `features`) holding Features,
# whose map entries may come in any number of pieces: serialized Features
# concatenate into their union. Movies and users are serialized once each and
# joined to every rating as bytes, which makes the join several times faster
# than building a proto per rating.
_EXAMPLE_FEATURES_TAG = b"\x0a"


def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    low, value = value & 0x7F, value >> 7
    if not value:
      out.append(low)
      return bytes(out)
    out.append(low | 0x80)


def _features(feature: Dict[str, tf.train.Feature]) -> bytes:
  return tf.train.Features(feature=feature).SerializeToString()


def rating_features(rating: Rating, offset: int) -> bytes:
  return _features({
      F.USER_ID: _bytes(rating.user_id),
      F.ITEM_ID: _bytes(rating.item_id),
      F.RATING: tf.train.Feature(
          float_list=tf.train.FloatList(value=[rating.rating])),
      F.TIMESTAMP: _ints(rating.timestamp),
      F.FILE_OFFSET: _ints(offset),
  })


def movie_features(movie: Movie) -> bytes:
  feature = {F.ITEM_TITLE: _bytes(movie.title),
             F.ITEM_GENRES: _bytes(*movie.genres)}
  if movie.year is not None:
    feature[F.ITEM_YEAR] = _ints(movie.year)
  return _features(feature)


def user_features(user: User) -> bytes:
  return _features({
      F.USER_GENDER: _bytes(user.gender),
      F.USER_AGE: _ints(user.age),
      F.USER_OCCUPATION: _bytes(user.occupation),
      F.USER_ZIPCODE: _bytes(user.zipcode),
  })


def serialized_example(*features: bytes) -> bytes:
  """A serialized tf.train.Example from serialized Features parts."""
  body = b"".join(features)
  return _EXAMPLE_FEATURES_TAG + _varint(len(body)) + body


def to_example(rating: Rating, offset: int, movie: Movie,
               user: Optional[User]) -> tf.train.Example:
  """The raw example of one rating (what ingestion writes), as a proto."""
  parts = [rating_features(rating, offset), movie_features(movie)]
  if user is not None:
    parts.append(user_features(user))
  return tf.train.Example.FromString(serialized_example(*parts))


class _JoinRating:
  """Parses a ratings line and joins its movie (and user, if there are users).

  Side inputs map ids to serialized Features (see serialized_example).
  """

  def __init__(self, files: MovieLensFiles):
    self._parse = files.format.parse_rating
    self._movies_file = os.path.basename(files.movies)
    self._users_file = os.path.basename(files.users) if files.users else None

  def __call__(self, text: str, offset: int, movies: Dict[str, bytes],
               users: Dict[str, bytes]) -> bytes:
    rating = self._parse(text)
    movie = movies.get(rating.item_id)
    if movie is None:
      raise MalformedLineError(
          f"movie id {rating.item_id} is not in {self._movies_file}")
    parts = [rating_features(rating, offset), movie]
    if self._users_file:
      user = users.get(rating.user_id)
      if user is None:
        raise MalformedLineError(
            f"user id {rating.user_id} is not in {self._users_file}")
      parts.append(user)
    return serialized_example(*parts)


def _keyed(parse, serialize):
  """(text, offset) -> (id, serialized Features), for joining as a side input."""
  def parse_keyed(text: str, offset: int):  # pylint: disable=unused-argument
    value = parse(text)
    return value[0], serialize(value)
  return parse_keyed


@beam.ptransform_fn
def ReadMovieLens(pipeline: beam.Pipeline, files: MovieLensFiles):  # pylint: disable=invalid-name
  """-> {"examples": serialized tf.Examples, "malformed": MalformedLines, one
  PCollection per file (see ingestion.WriteIngestionSummary)}."""
  fmt = files.format

  def parsed(name: str, path: str, parse, **side_inputs):
    return (
        pipeline
        | f"Read{name}" >> ingestion.ReadLinesWithOffsets(path)
        | f"Parse{name}" >> beam.ParDo(
            ingestion.ParseLines(parse, fmt.encoding, skip_first_line=fmt.header),
            **side_inputs).with_outputs(ingestion.MALFORMED, main="parsed"))

  movies = parsed("Movies", files.movies,
                  _keyed(fmt.parse_movie, movie_features))
  malformed = [movies[ingestion.MALFORMED]]
  if files.users:
    users = parsed("Users", files.users, _keyed(fmt.parse_user, user_features))
    malformed.append(users[ingestion.MALFORMED])
    users_dict = beam.pvalue.AsDict(users.parsed)
  else:
    users_dict = beam.pvalue.AsDict(pipeline | "NoUsers" >> beam.Create([]))
  ratings = parsed("Ratings", files.ratings, _JoinRating(files),
                   movies=beam.pvalue.AsDict(movies.parsed), users=users_dict)
  malformed.append(ratings[ingestion.MALFORMED])
  return {
      "examples": ratings.parsed,
      "malformed": tuple(malformed),
  }


@beam.ptransform_fn
def _MovieLensToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
                        split_pattern: str):  # pylint: disable=invalid-name,unused-argument
  """The ExampleGen hook: reads every file of the detected layout (the split
  pattern only feeds the driver's input fingerprint) and writes the summary."""
  files = detect_files(exec_properties[standard_component_specs.INPUT_BASE_KEY])
  read = pipeline | "ReadMovieLens" >> ReadMovieLens(files)  # pylint: disable=no-value-for-parameter
  _ = read | "Summarize" >> ingestion.WriteIngestionSummary(
      exec_properties[raw_example_gen.REPORT_DIR])
  return read["examples"]


class Executor(raw_example_gen.RawExampleGenExecutor):
  """Reads a MovieLens directory; writes the single split `ratings`."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return _MovieLensToExample

  def describe(self, input_base: str) -> Dict[str, Any]:
    files = detect_files(input_base)
    return {"format": files.format.name,
            "files": [p for p in (files.ratings, files.movies, files.users) if p]}


class MovieLensExampleGen(raw_example_gen.RawExampleGen):
  """ExampleGen for the raw MovieLens formats (ML-1M, ML-100K, CSV family).

  Outputs Examples with the single split `ratings`: every rating joined with
  its movie's title, genres and year and, where the data set has them, the
  user's gender, age, occupation and zip code.
  """

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
  SPLIT = SPLIT
