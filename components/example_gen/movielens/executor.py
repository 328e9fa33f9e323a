"""The executor of MovieLensExampleGen: raw GroupLens files -> one
tf.Example per rating.

The ratings file is read split across Beam workers; movies and users, small
dimension tables, are joined as side inputs. Every malformed line (and every
rating whose movie or user is unknown) is counted and reported with its file
and line; more than `max_malformed_lines` fails the run.
"""
from __future__ import annotations

import os
from typing import Any, Dict

import apache_beam as beam
import tensorflow as tf
from tfx.types import standard_component_specs

from components.example_gen import executor as base_executor
from components.lib import features as F
from components.lib import ingestion
from components.lib.ingestion import MalformedLine, MalformedLineError
from components.lib.movielens_formats import Movie, MovieLensFiles, Rating, User
from components.lib.movielens_formats import detect_files

SPLIT = "ratings"
# Execution parameters: data.layout and data.encoding ("": detected).
LAYOUT = "layout"
ENCODING = "encoding"


def _bytes(*values: str) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(
      value=[v.encode("utf-8") for v in values]))


def _ints(*values: int) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


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


class _JoinRating:
  """Parses a ratings line and joins its movie (and user, if there are users).

  Side inputs map ids to serialized Features (see base_executor.serialized_example).
  """

  def __init__(self, files: MovieLensFiles):
    self._parse = files.format.parse_rating
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
    parts = [rating_features(rating, offset), movie]
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
  """The rejected lines of a catalog file, with line numbers, by the id
  their first field holds (when it is one): a side input."""
  def by_id(lines):
    for line in ingestion.resolve_line_numbers(lines):
      key = line.text.split(separator, 1)[0].strip()
      if key.isascii() and key.isdigit():
        yield key, line
  return beam.pvalue.AsDict(
      malformed
      | f"Collect{name}" >> beam.combiners.ToList()
      | f"ById{name}" >> beam.FlatMap(by_id))


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
            ingestion.ParseLines(parse, files.encoding(path),
                                 skip_first_line=fmt.header),
            **side_inputs).with_outputs(ingestion.MALFORMED, main="parsed"))

  movies = parsed("Movies", files.movies,
                  _keyed(fmt.parse_movie, movie_features))
  malformed = [movies[ingestion.MALFORMED]]
  if files.users:
    users = parsed("Users", files.users, _keyed(fmt.parse_user, user_features))
    malformed.append(users[ingestion.MALFORMED])
    users_dict = beam.pvalue.AsDict(users.parsed)
    rejected_users = _rejected_by_id(users[ingestion.MALFORMED],
                                     fmt.separator, "Users")
  else:
    users_dict = rejected_users = beam.pvalue.AsDict(
        pipeline | "NoUsers" >> beam.Create([]))
  ratings = parsed("Ratings", files.ratings, _JoinRating(files),
                   movies=beam.pvalue.AsDict(movies.parsed), users=users_dict,
                   rejected_movies=_rejected_by_id(
                       movies[ingestion.MALFORMED], fmt.separator, "Movies"),
                   rejected_users=rejected_users)
  malformed.append(ratings[ingestion.MALFORMED])
  return {
      "examples": ratings.parsed,
      "malformed": tuple(malformed),
  }


def movielens_files(exec_properties: Dict[str, Any]) -> MovieLensFiles:
  """The input files, their layout and encodings, as the settings say."""
  return detect_files(exec_properties[standard_component_specs.INPUT_BASE_KEY],
                      exec_properties.get(LAYOUT) or "",
                      exec_properties.get(ENCODING) or "")


@beam.ptransform_fn
def _MovieLensToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
                        split_pattern: str):  # pylint: disable=invalid-name,unused-argument
  """The ExampleGen hook: reads every file of the detected layout (the split
  pattern only feeds the driver's input fingerprint) and writes the summary."""
  files = movielens_files(exec_properties)
  read = pipeline | "ReadMovieLens" >> ReadMovieLens(files)  # pylint: disable=no-value-for-parameter
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
