"""The raw MovieLens formats as GroupLens ships them, and their line parsers.

Three layouts exist, told apart by the files present:

* ML-1M (and ML-10M): `ratings.dat`, `movies.dat`, optional `users.dat`;
  fields separated by `::`, latin-1.
* ML-100K: `u.data` (tab separated), `u.item` (pipe separated, 19 genre flags),
  optional `u.user`; latin-1.
* ML-20M/25M/latest: `ratings.csv`, `movies.csv` (titles quoted when they hold
  a comma), UTF-8, with a header line; no user file.

Parsers take one decoded line and return a tuple, or raise MalformedLineError
with the reason. They are plain functions so that they pickle into Beam.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import re
from typing import Callable, Dict, NamedTuple, Optional, Sequence, Tuple

import tensorflow as tf

from components.lib.ingestion import (IngestionError, MalformedLineError,
                                      parse_float, parse_int, require_file)

# ML-100K encodes genres as 19 flags in this order (u.genre).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy",
    "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror",
    "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")
# Placeholders that mean "no genre"; they become an empty genre list.
NO_GENRE = frozenset({"unknown", "(no genres listed)"})

_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")
_YEAR_IN_DATE = re.compile(r"(\d{4})\s*$")


class Rating(NamedTuple):
  user_id: str
  item_id: str
  rating: float
  timestamp: int


class Movie(NamedTuple):
  item_id: str
  title: str
  genres: Tuple[str, ...]
  year: Optional[int]


class User(NamedTuple):
  user_id: str
  gender: str
  age: int
  occupation: str
  zipcode: str


def _fields(text: str, sep: str, expected: int) -> list:
  fields = text.split(sep)
  if len(fields) != expected:
    raise MalformedLineError(
        f"expected {expected} fields separated by {sep!r}, found {len(fields)}")
  return fields


def _id(value: str, what: str) -> str:
  value = value.strip()
  # isdigit() alone accepts non-ASCII digits such as "²" that are no integer.
  if not (value.isascii() and value.isdigit()):
    raise MalformedLineError(f"{what} {value!r} is not a non-negative integer")
  return value


def _rating(user: str, item: str, rating: str, timestamp: str) -> Rating:
  return Rating(_id(user, "user id"), _id(item, "movie id"),
                parse_float(rating, "rating"), parse_int(timestamp, "timestamp"))


def _year_from_title(title: str) -> Optional[int]:
  match = _YEAR_IN_TITLE.search(title)
  return int(match.group(1)) if match else None


def _genres(names) -> Tuple[str, ...]:
  return tuple(g for g in (n.strip() for n in names) if g and g not in NO_GENRE)


def _title(title: str) -> str:
  title = title.strip()
  if not title:
    raise MalformedLineError("empty title")
  return title


# --- ML-1M / ML-10M ---------------------------------------------------------
def parse_1m_rating(text: str) -> Rating:
  return _rating(*_fields(text, "::", 4))


def parse_1m_movie(text: str) -> Movie:
  item, title, genres = _fields(text, "::", 3)
  title = _title(title)
  return Movie(_id(item, "movie id"), title, _genres(genres.split("|")),
               _year_from_title(title))


def parse_1m_user(text: str) -> User:
  user, gender, age, occupation, zipcode = _fields(text, "::", 5)
  return User(_id(user, "user id"), gender.strip(), parse_int(age, "age"),
              occupation.strip(), zipcode.strip())


# --- ML-100K ----------------------------------------------------------------
def parse_100k_rating(text: str) -> Rating:
  return _rating(*_fields(text, "\t", 4))


def parse_100k_movie(text: str) -> Movie:
  fields = _fields(text, "|", 5 + len(ML100K_GENRES))
  item, title, release_date = fields[0], _title(fields[1]), fields[2]
  flags = fields[5:]
  if any(f.strip() not in ("0", "1") for f in flags):
    raise MalformedLineError("genre flags must be 0 or 1")
  year = _year_from_title(title)
  if year is None:
    match = _YEAR_IN_DATE.search(release_date)
    year = int(match.group(1)) if match else None
  genres = _genres(g for g, f in zip(ML100K_GENRES, flags) if f.strip() == "1")
  return Movie(_id(item, "movie id"), title, genres, year)


def parse_100k_user(text: str) -> User:
  user, age, gender, occupation, zipcode = _fields(text, "|", 5)
  return User(_id(user, "user id"), gender.strip(), parse_int(age, "age"),
              occupation.strip(), zipcode.strip())


# --- ML-20M / ML-25M / ml-latest (CSV) -------------------------------------
CSV_RATINGS_HEADER = "userId,movieId,rating,timestamp"
CSV_MOVIES_HEADER = "movieId,title,genres"


def parse_csv_rating(text: str) -> Rating:
  return _rating(*_fields(text, ",", 4))


def parse_csv_movie(text: str) -> Movie:
  try:
    (fields,) = list(csv.reader([text], strict=True))
  except (csv.Error, ValueError) as e:
    raise MalformedLineError(f"bad CSV quoting: {e}") from None
  if len(fields) != 3:
    raise MalformedLineError(
        f"expected 3 comma-separated fields (movieId,title,genres), "
        f"found {len(fields)}")
  item, title, genres = fields
  title = _title(title)
  return Movie(_id(item, "movie id"), title, _genres(genres.split("|")),
               _year_from_title(title))


@dataclasses.dataclass(frozen=True)
class MovieLensFormat:
  """A MovieLens layout: its files, encoding and parsers."""
  name: str
  ratings_file: str
  movies_file: str
  users_file: Optional[str]
  encoding: str
  header: bool
  separator: str  # between the fields; an id is the first
  parse_rating: Callable[[str], Rating]
  parse_movie: Callable[[str], Movie]
  parse_user: Optional[Callable[[str], User]]


ML_1M = MovieLensFormat("ml-1m", "ratings.dat", "movies.dat", "users.dat",
                        "latin-1", False, "::", parse_1m_rating, parse_1m_movie,
                        parse_1m_user)
ML_100K = MovieLensFormat("ml-100k", "u.data", "u.item", "u.user", "latin-1",
                          False, "|", parse_100k_rating, parse_100k_movie,
                          parse_100k_user)
ML_CSV = MovieLensFormat("ml-csv", "ratings.csv", "movies.csv", None, "utf-8",
                         True, ",", parse_csv_rating, parse_csv_movie, None)
FORMATS = (ML_1M, ML_100K, ML_CSV)
_CSV_HEADERS = {ML_CSV.ratings_file: CSV_RATINGS_HEADER,
                ML_CSV.movies_file: CSV_MOVIES_HEADER}


@dataclasses.dataclass(frozen=True)
class MovieLensFiles:
  format: MovieLensFormat
  ratings: str
  movies: str
  users: Optional[str]
  # path -> (encoding, why): see `file_encoding`.
  encodings: Dict[str, Tuple[str, str]] = dataclasses.field(
      default_factory=dict)

  @property
  def paths(self) -> Tuple[str, ...]:
    return tuple(p for p in (self.ratings, self.movies, self.users) if p)

  def encoding(self, path: str) -> str:
    return self.encodings[path][0]


def file_encoding(path: str, layout_encoding: str, forced: str = ""
                  ) -> Tuple[str, str]:
  """(encoding, why) of one file. GroupLens ships the `.dat` and `u.*` files
  in latin-1, but a file saved again by an editor is often UTF-8, and read
  as latin-1 its accents become mojibake ("NoÃ«l") that nothing rejects: a
  latin-1 layout's file that decodes as UTF-8 and has non-ASCII bytes is
  read as UTF-8 (latin-1 text of real words almost never is valid UTF-8).
  The CSV layout is UTF-8 by definition; `forced` (data.encoding) wins."""
  if forced:
    return forced, "data.encoding"
  if layout_encoding == "utf-8":
    return "utf-8", "the layout's encoding"
  with tf.io.gfile.GFile(path, "rb") as f:
    data = f.read()
  if data.isascii():
    return layout_encoding, "ASCII only"
  try:
    data.decode("utf-8")
  except UnicodeDecodeError:
    return layout_encoding, "the layout's encoding"
  return "utf-8", "valid UTF-8 with non-ASCII characters"


def _check_header(path: str, expected: str) -> None:
  with tf.io.gfile.GFile(path, "rb") as f:
    first = f.readline().decode("utf-8", errors="replace").strip().lstrip("\ufeff")
  if first != expected:
    raise IngestionError(
        f"{path}:1: expected the header {expected!r}, found {first[:120]!r}")


def _catalog_file(name: str, data_dir: str,
                  catalog_dirs: Sequence[str]) -> str:
  """data_dir's own file `name`, else the first of catalog_dirs' (a span
  without its own movies or users file: components/lib/spans.py)."""
  for directory in (data_dir, *catalog_dirs):
    path = os.path.join(directory, name)
    if tf.io.gfile.exists(path):
      return path
  return os.path.join(data_dir, name)


def detect_files(data_dir: str, layout: str = "", encoding: str = "",
                 catalog_dirs: Sequence[str] = ()) -> MovieLensFiles:
  """Finds which MovieLens layout data_dir holds (`layout`, data.layout,
  picks one when it holds several) and each file's encoding (`encoding`,
  data.encoding, forces one); clear errors otherwise. Movies and users
  files data_dir lacks are taken from the first of `catalog_dirs` that has
  them."""
  if not tf.io.gfile.isdir(data_dir):
    raise IngestionError(f"data directory not found: {data_dir}")
  present = [f for f in FORMATS if (not layout or f.name == layout)
             and tf.io.gfile.exists(os.path.join(data_dir, f.ratings_file))]
  if not present:
    looked_for = [f for f in FORMATS if not layout or f.name == layout]
    raise IngestionError(
        f"no MovieLens ratings file in {data_dir} (looked for "
        f"{', '.join(f.ratings_file for f in looked_for)}"
        f"{f', the {layout} layout (data.layout)' if layout else ''})")
  if len(present) > 1:
    raise IngestionError(
        f"{data_dir} holds the files of {len(present)} MovieLens layouts: "
        + ", ".join(f"{f.name} ({f.ratings_file})" for f in present)
        + "; set data.layout to the one to read (--set data.layout="
        f"{present[0].name})")
  (fmt,) = present
  ratings = require_file(os.path.join(data_dir, fmt.ratings_file),
                         f"{fmt.name} ratings file")
  movies = require_file(
      _catalog_file(fmt.movies_file, data_dir, catalog_dirs),
      f"{fmt.name} movies file (needed beside {ratings})")
  users = None
  if fmt.users_file:
    users_path = _catalog_file(fmt.users_file, data_dir, catalog_dirs)
    if tf.io.gfile.exists(users_path):
      users = require_file(users_path, f"{fmt.name} users file")
  if fmt.header:
    for path in (ratings, movies):
      _check_header(path, _CSV_HEADERS[os.path.basename(path)])
  # The ratings file holds ids and numbers only: a non-ASCII byte there is a
  # malformed line in any encoding, so it is not read twice to find out.
  encodings = {ratings: ((encoding, "data.encoding") if encoding
                         else (fmt.encoding, "the layout's encoding"))}
  for path in (movies, users):
    if path:
      encodings[path] = file_encoding(path, fmt.encoding, encoding)
  return MovieLensFiles(fmt, ratings, movies, users, encodings)
