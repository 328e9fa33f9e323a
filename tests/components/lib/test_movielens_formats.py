"""Tests of the MovieLens line parsers and format detection."""
import os
from pathlib import Path

import pytest

from components.lib import movielens_formats as formats
from components.lib import settings
from components.lib.ingestion import IngestionError, MalformedLineError
from components.lib.movielens_formats import detect_files
from pipeline import PROJECT_ROOT


@pytest.mark.parametrize("parse, text, fragments", [
    (formats.parse_1m_rating, "1::2::3", ("4 fields", "found 3")),
    (formats.parse_1m_rating, "1::2::3::4::5", ("4 fields", "found 5")),
    (formats.parse_1m_rating, "1::2::x::4", ("rating", "'x'")),
    (formats.parse_1m_rating, "1::2::nan::4", ("rating", "finite")),
    (formats.parse_1m_rating, "1::2::3::4.5", ("timestamp", "4.5")),
    (formats.parse_1m_rating, "-1::2::3::4", ("user id", "-1")),
    (formats.parse_1m_rating, "1::2.0::3::4", ("movie id", "2.0")),
    (formats.parse_1m_rating, "1²::2::3::4", ("user id",)),
    (formats.parse_1m_rating, "::2::3::4", ("user id",)),
    (formats.parse_1m_movie, "1::  ::Drama", ("title",)),
    (formats.parse_1m_user, "1::F::old::10::48067", ("age", "old")),
    (formats.parse_1m_rating, "1::2::3::99999999999999999999",
     ("timestamp", "99999999999999999999", "64-bit integer range")),
    (formats.parse_1m_user, "1::F::1e400::10::48067", ("age", "1e400")),
    (formats.parse_100k_user, "1|99999999999999999999|M|technician|55105",
     ("age", "64-bit integer range")),
    (formats.parse_csv_rating, "1,2,1e39,5", ("rating", "32-bit float")),
    (formats.parse_100k_rating, "1 2 3 4", ("4 fields", "found 1")),
    (formats.parse_100k_movie, "1|Toy Story (1995)|01-Jan-1995||url|" +
     "|".join(["0"] * 18), ("24 fields", "found 23")),
    (formats.parse_100k_movie, "1|Toy Story (1995)|01-Jan-1995||url|" +
     "|".join(["0"] * 18 + ["2"]), ("genre",)),
    (formats.parse_100k_user, "1|24|M|technician", ("5 fields",)),
    (formats.parse_csv_rating, "1,2,3.5,x", ("timestamp", "'x'")),
    (formats.parse_csv_movie, '1,"Bad "quote" (1995)",Drama', ("quot",)),
    (formats.parse_csv_movie, "1,American President, The (1995),Comedy",
     ("3 comma-separated fields", "found 4")),
])
def test_parsers_reject_with_reason(parse, text, fragments):
  with pytest.raises(MalformedLineError) as raised:
    parse(text)
  for fragment in fragments:
    assert fragment in str(raised.value)


def test_parsers_fields_and_years():
  assert formats.parse_1m_rating(" 1 ::2::3.5::4") == ("1", "2", 3.5, 4)
  assert formats.parse_1m_movie("7::Sabrina (1995) ::Comedy|Romance") == (
      "7", "Sabrina (1995)", ("Comedy", "Romance"), 1995)
  # A year that is not at the end of the title is not the release year.
  assert formats.parse_1m_movie("8::1984 (Nineteen Eighty-Four)::Drama").year \
      is None
  assert formats.parse_1m_user("1::F::1::10::48067-1234") == (
      "1", "F", 1, "10", "48067-1234")
  assert formats.parse_100k_user("1|24|M|technician|85711") == (
      "1", "M", 24, "technician", "85711")
  assert formats.parse_csv_movie('5,"Lord, The ""Ring"" (2001)",Drama') == (
      "5", 'Lord, The "Ring" (2001)', ("Drama",), 2001)


LAYOUTS = {
    "ml-1m": ("ratings.dat", "movies.dat", "users.dat"),
    "ml-100k": ("u.data", "u.item", "u.user"),
    "ml-csv": ("ratings.csv", "movies.csv", None),
}
CSV_HEADERS = {"ratings.csv": "userId,movieId,rating,timestamp\n",
               "movies.csv": "movieId,title,genres\n"}


def _touch(path: Path, text: str = "1\n"):
  path.write_text(CSV_HEADERS.get(path.name, "") + text)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_detect_files_finds_each_layout(tmp_path, name):
  ratings, movies, users = LAYOUTS[name]
  for file_name in filter(None, (ratings, movies, users)):
    _touch(tmp_path / file_name)
  files = detect_files(str(tmp_path))
  assert files.format.name == name
  assert files.ratings == str(tmp_path / ratings)
  assert files.movies == str(tmp_path / movies)
  assert files.users == (str(tmp_path / users) if users else None)


def test_detect_files_users_file_is_optional(tmp_path):
  _touch(tmp_path / "ratings.dat")
  _touch(tmp_path / "movies.dat")
  assert detect_files(str(tmp_path)).users is None


def test_detect_files_accepts_csv_header_with_bom_and_crlf(tmp_path):
  (tmp_path / "ratings.csv").write_bytes(
      b"\xef\xbb\xbfuserId,movieId,rating,timestamp\r\n1,1,4.0,1\r\n")
  _touch(tmp_path / "movies.csv")
  assert detect_files(str(tmp_path)).format.name == "ml-csv"


def test_detect_files_missing_directory(tmp_path):
  missing = tmp_path / "nope"
  with pytest.raises(IngestionError, match="not found") as raised:
    detect_files(str(missing))
  assert str(missing) in str(raised.value)


def test_detect_files_no_ratings_file(tmp_path):
  _touch(tmp_path / "movies.dat")
  _touch(tmp_path / "README")
  with pytest.raises(IngestionError, match="no MovieLens ratings") as raised:
    detect_files(str(tmp_path))
  assert str(tmp_path) in str(raised.value)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_detect_files_movies_missing(tmp_path, name):
  ratings, movies, _ = LAYOUTS[name]
  _touch(tmp_path / ratings)
  with pytest.raises(IngestionError, match="not found") as raised:
    detect_files(str(tmp_path))
  assert str(tmp_path / movies) in str(raised.value)


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_detect_files_empty_ratings(tmp_path, name):
  ratings, movies, _ = LAYOUTS[name]
  (tmp_path / ratings).write_bytes(b"")
  _touch(tmp_path / movies)
  with pytest.raises(IngestionError, match="empty") as raised:
    detect_files(str(tmp_path))
  assert str(tmp_path / ratings) in str(raised.value)


@pytest.mark.parametrize("bad_file", ["ratings.csv", "movies.csv"])
def test_detect_files_csv_wrong_header(tmp_path, bad_file):
  _touch(tmp_path / "ratings.csv")
  _touch(tmp_path / "movies.csv")
  (tmp_path / bad_file).write_text("1,1,4.0,964982703\n")  # no header
  with pytest.raises(IngestionError, match="header") as raised:
    detect_files(str(tmp_path))
  assert f"{tmp_path / bad_file}:1" in str(raised.value)


def test_two_layouts_in_one_directory_need_data_layout(tmp_path):
  for file_name in ("ratings.dat", "movies.dat", "ratings.csv", "movies.csv"):
    _touch(tmp_path / file_name)
  with pytest.raises(IngestionError) as raised:
    detect_files(str(tmp_path))
  assert str(raised.value) == (
      f"{tmp_path} holds the files of 2 MovieLens layouts: ml-1m "
      "(ratings.dat), ml-csv (ratings.csv); set data.layout to the one to "
      "read (--set data.layout=ml-1m)")
  assert detect_files(str(tmp_path), layout="ml-csv").format.name == "ml-csv"
  assert detect_files(str(tmp_path), layout="ml-1m").format.name == "ml-1m"
  with pytest.raises(IngestionError, match=r"looked for u\.data, the ml-100k "
                     r"layout \(data\.layout\)"):
    detect_files(str(tmp_path), layout="ml-100k")


def test_layout_names_are_the_settings_choices():
  assert tuple(f.name for f in formats.FORMATS) == settings.MOVIELENS_LAYOUTS


NOEL_LATIN1 = "1::River Noël (2001)::Drama\n".encode("latin-1")
NOEL_UTF8 = "1::River Noël (2001)::Drama\n".encode("utf-8")


@pytest.mark.parametrize("movies, forced, expected, why", [
    (b"1::Heat (1995)::Drama\n", "", "latin-1", "ASCII only"),
    (NOEL_LATIN1, "", "latin-1", "the layout's encoding"),
    (NOEL_UTF8, "", "utf-8", "valid UTF-8 with non-ASCII characters"),
    (NOEL_UTF8, "latin-1", "latin-1", "data.encoding"),
])
def test_catalog_encoding_is_detected_or_forced(tmp_path, movies, forced,
                                                expected, why):
  _touch(tmp_path / "ratings.dat")
  (tmp_path / "movies.dat").write_bytes(movies)
  files = detect_files(str(tmp_path), encoding=forced)
  assert files.encodings[files.movies] == (expected, why)
  # The accented title decodes to the same text from either file.
  if movies != b"1::Heat (1995)::Drama\n" and not forced:
    text = movies.decode(files.encoding(files.movies))
    assert formats.parse_1m_movie(text.strip()).title == "River Noël (2001)"


def test_real_ml1m_if_present():
  data_dir = Path(os.environ.get(
      "ML1M_DIR", Path(PROJECT_ROOT).parent / "shared/data/ml-1m"))
  if not data_dir.is_dir():
    pytest.skip(f"real MovieLens 1M files not present at {data_dir}")
  files = detect_files(str(data_dir))
  assert files.format.name == "ml-1m"
  assert files.users == str(data_dir / "users.dat")
  raw = (data_dir / "movies.dat").read_bytes()
  lines = raw.decode("latin-1").splitlines()
  movies = [formats.parse_1m_movie(line) for line in lines]
  assert len(movies) == raw.count(b"\n") > 3000
  assert len({m.item_id for m in movies}) == len(movies)
  assert all(m.year and 1900 < m.year < 2001 for m in movies)
  assert any(not m.title.isascii() for m in movies)  # latin-1 decoded


# --- the executor end to end ----------------------------------------------------
