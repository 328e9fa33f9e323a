"""Tests of MovieLensExampleGen's executor: the three formats read by
ReadMovieLens, malformed lines with file and line, and the executor's
split, report and failures.

Every input is a small file written into pytest's tmp_path; expected byte
offsets and line numbers are computed from the bytes the test writes, not
taken from the code under test.
"""
import json
import os
from pathlib import Path
from typing import Dict, List, Tuple

import apache_beam as beam
import pytest
import tensorflow as tf
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components.example_gen import component as example_gen_component
from components.example_gen import executor as example_gen_executor
from components.example_gen.movielens import executor as gen
from components.example_gen.movielens.component import MovieLensExampleGen
from components.lib import features as F
from components.lib import ingestion
from components.lib import layout
from components.lib.ingestion import IngestionError, MalformedLine
from components.lib.movielens_formats import detect_files
from tests.support.files import collect, load, write_lines

# The genre flag order of ML-100K's u.genre, written out independently of
# the module's own table.
U_GENRE = ("unknown", "Action", "Adventure", "Animation", "Children's",
           "Comedy", "Crime", "Documentary", "Drama", "Fantasy", "Film-Noir",
           "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
           "War", "Western")



def read_movielens(data_dir: Path, tmp_path: Path):
  """Runs ReadMovieLens; returns (examples as dicts, resolved MalformedLines)."""
  files = detect_files(str(data_dir))
  out = tmp_path / "beam_out"
  out.mkdir()
  with beam.Pipeline() as pipeline:
    read = pipeline | gen.ReadMovieLens(files)  # pylint: disable=no-value-for-parameter
    collect(read["examples"], out / "examples.pkl", "Examples")
    collect(read["malformed"] | "Flatten" >> beam.Flatten(),  # in-process
             out / "malformed.pkl", "Malformed")
  examples = [feature_dict(tf.train.Example.FromString(e))
              for e in load(out / "examples.pkl")]
  malformed = ingestion.resolve_line_numbers(load(out / "malformed.pkl"))
  return examples, malformed


def feature_dict(example: tf.train.Example) -> Dict[str, list]:
  """Feature name -> list of values (bytes decoded as UTF-8)."""
  result = {}
  for name, feature in example.features.feature.items():
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    if kind == "bytes_list":
      values = [v.decode("utf-8") for v in values]
    result[name] = values
  return result


def by_offset(examples: List[dict]) -> Dict[int, dict]:
  result = {e[F.FILE_OFFSET][0]: e for e in examples}
  assert len(result) == len(examples), "file offsets are not unique"
  return result


def rating_example(user, item, rating, timestamp, offset, title, genres,
                   year=None, user_features=None) -> dict:
  expected = {
      F.USER_ID: [user], F.ITEM_ID: [item], F.RATING: [rating],
      F.TIMESTAMP: [timestamp], F.FILE_OFFSET: [offset],
      F.ITEM_TITLE: [title], F.ITEM_GENRES: list(genres),
  }
  if year is not None:
    expected[F.ITEM_YEAR] = [year]
  if user_features is not None:
    gender, age, occupation, zipcode = user_features
    expected.update({F.USER_GENDER: [gender], F.USER_AGE: [age],
                     F.USER_OCCUPATION: [occupation],
                     F.USER_ZIPCODE: [zipcode]})
  return expected


def summarize(malformed: List[MalformedLine]):
  return [(os.path.basename(m.path), m.line) for m in malformed]


def assert_reasons(malformed: List[MalformedLine],
                   expected: Dict[Tuple[str, int], Tuple[str, ...]]):
  """Each malformed line's reason holds all the expected fragments."""
  for m in malformed:
    for fragment in expected[(os.path.basename(m.path), m.line)]:
      assert fragment in m.reason, (m.line, m.reason, fragment)


def u_item(item: int, title: str, release: str, *genres: str) -> str:
  flags = "|".join("1" if g in genres else "0" for g in U_GENRE)
  return f"{item}|{title}|{release}||http://us.imdb.com/M/title-exact?x|{flags}"


# --- the three formats through ReadMovieLens --------------------------------
def test_ml1m_latin1_with_users(tmp_path):
  data = tmp_path / "ml-1m"
  data.mkdir()
  write_lines(data / "movies.dat", [
      "1::Toy Story (1995)::Animation|Children's|Comedy",
      "2::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi",
      "3::Untitled Project::Drama",
  ], encoding="latin-1")
  write_lines(data / "users.dat", [
      "1::F::1::10::48067",
      "2::M::56::16::70072",
  ], encoding="latin-1")
  offsets = write_lines(data / "ratings.dat", [
      "1::1::5::978300760",
      "1::2::3::978302109",
      "2::3::4::978301968",
      "2::2::1::978300275",
  ], encoding="latin-1")
  # The title really is latin-1 on disk (not valid UTF-8).
  assert "Cité".encode("latin-1") in (data / "movies.dat").read_bytes()

  examples, malformed = read_movielens(data, tmp_path)

  assert malformed == []
  cite = "Cité des enfants perdus, La (1995)"
  user1, user2 = ("F", 1, "10", "48067"), ("M", 56, "16", "70072")
  assert by_offset(examples) == {
      offsets[0]: rating_example(
          "1", "1", 5.0, 978300760, offsets[0], "Toy Story (1995)",
          ["Animation", "Children's", "Comedy"], 1995, user1),
      offsets[1]: rating_example(
          "1", "2", 3.0, 978302109, offsets[1], cite,
          ["Adventure", "Sci-Fi"], 1995, user1),
      offsets[2]: rating_example(
          "2", "3", 4.0, 978301968, offsets[2], "Untitled Project", ["Drama"],
          None, user2),
      offsets[3]: rating_example(
          "2", "2", 1.0, 978300275, offsets[3], cite,
          ["Adventure", "Sci-Fi"], 1995, user2),
  }


def test_ml100k_tabs_pipes_genre_flags_and_release_year(tmp_path):
  data = tmp_path / "ml-100k"
  data.mkdir()
  write_lines(data / "u.item", [
      u_item(1, "Toy Story (1995)", "01-Jan-1995",
             "Animation", "Children's", "Comedy"),
      u_item(2, "Misérables, Les (1995)", "01-Jan-1995", "Drama", "Musical"),
      u_item(3, "unknown", "", "unknown"),  # ML-100K's movie 267
      u_item(4, "Some Title Without Year", "14-Mar-1997", "Thriller"),
      u_item(5, "Mixed (1996)", "01-Jan-1996", "unknown", "War"),
  ], encoding="latin-1")
  write_lines(data / "u.user", [
      "1|24|M|technician|85711",
      "2|53|F|other|94043",
  ], encoding="latin-1")
  offsets = write_lines(data / "u.data", [
      "1\t1\t5\t874965758",
      "2\t2\t3\t876893171",
      "1\t3\t4\t878542960",
      "2\t4\t2\t880606923",
      "1\t5\t1\t880606924",
  ], encoding="latin-1")

  examples, malformed = read_movielens(data, tmp_path)

  assert malformed == []
  user1 = ("M", 24, "technician", "85711")
  user2 = ("F", 53, "other", "94043")
  assert by_offset(examples) == {
      offsets[0]: rating_example(
          "1", "1", 5.0, 874965758, offsets[0], "Toy Story (1995)",
          ["Animation", "Children's", "Comedy"], 1995, user1),
      offsets[1]: rating_example(
          "2", "2", 3.0, 876893171, offsets[1], "Misérables, Les (1995)",
          ["Drama", "Musical"], 1995, user2),
      # The `unknown` flag is no genre; no year in title nor release date.
      offsets[2]: rating_example(
          "1", "3", 4.0, 878542960, offsets[2], "unknown", [], None, user1),
      # No year in the title: the release date gives it.
      offsets[3]: rating_example(
          "2", "4", 2.0, 880606923, offsets[3], "Some Title Without Year",
          ["Thriller"], 1997, user2),
      offsets[4]: rating_example(
          "1", "5", 1.0, 880606924, offsets[4], "Mixed (1996)", ["War"], 1996,
          user1),
  }


def test_csv_family_header_quotes_utf8_and_no_users(tmp_path):
  data = tmp_path / "ml-latest"
  data.mkdir()
  # movies.csv with Windows line endings: no "\r" may leak into a feature.
  write_lines(data / "movies.csv", [
      "movieId,title,genres",
      '1,"American President, The (1995)",Comedy|Drama|Romance',
      "2,Amélie (2001),Comedy|Romance",
      "3,Some Documentary,(no genres listed)",
  ], eol="\r\n")
  offsets = write_lines(data / "ratings.csv", [
      "userId,movieId,rating,timestamp",
      "1,1,4.0,964982703",
      "1,2,3.5,964981247",
      "2,3,0.5,1445714835",
      "7,2,5.0,1445714900",  # any user: there is no users file to check
  ])

  examples, malformed = read_movielens(data, tmp_path)

  assert malformed == []
  president = "American President, The (1995)"
  assert by_offset(examples) == {
      offsets[1]: rating_example(
          "1", "1", 4.0, 964982703, offsets[1], president,
          ["Comedy", "Drama", "Romance"], 1995),
      offsets[2]: rating_example(
          "1", "2", 3.5, 964981247, offsets[2], "Amélie (2001)",
          ["Comedy", "Romance"], 2001),
      offsets[3]: rating_example(
          "2", "3", 0.5, 1445714835, offsets[3], "Some Documentary", []),
      offsets[4]: rating_example(
          "7", "2", 5.0, 1445714900, offsets[4], "Amélie (2001)",
          ["Comedy", "Romance"], 2001),
  }
  assert not any(set(F.USER_FEATURES) & set(e) for e in examples)


# --- malformed lines ---------------------------------------------------------
def test_malformed_lines_go_to_malformed_output_with_line_numbers(tmp_path):
  data = tmp_path / "ml-1m"
  data.mkdir()
  write_lines(data / "movies.dat", [
      "1::Toy Story (1995)::Animation|Children's|Comedy",
      "2::Jumanji (1995)::Adventure|Children's|Fantasy",
      "oops no separators",
  ], encoding="latin-1")
  write_lines(data / "users.dat", [
      "1::F::1::10::48067",
      "2::M::56::16::70072",
      "3::M::twenty::7::55117",
  ], encoding="latin-1")
  ratings = [
      "1::1::5::978300760",     # 1 ok
      "",                       # 2 blank
      "2::1::4::978301968",     # 3 ok
      "2::1::5",                # 4 three fields
      "1::2::five::978302000",  # 5 rating not a number
      "1x::2::3::978302000",    # 6 user id not an integer
      "1::9x::3::978302000",    # 7 movie id not an integer
      "1::99::3::978302000",    # 8 movie not in movies.dat
      "7::1::3::978302000",     # 9 user not in users.dat
      "   ",                    # 10 blank (spaces)
      "2::2::2::978300000",     # 11 ok
      "3::1::4::978300001",     # 12 user 3's own line is malformed
  ]
  offsets = write_lines(data / "ratings.dat", ratings, encoding="latin-1")

  examples, malformed = read_movielens(data, tmp_path)

  assert sorted(e[F.FILE_OFFSET][0] for e in examples) == [
      offsets[0], offsets[2], offsets[10]]
  assert summarize(malformed) == [
      ("movies.dat", 3), ("ratings.dat", 4), ("ratings.dat", 5),
      ("ratings.dat", 6), ("ratings.dat", 7), ("ratings.dat", 8),
      ("ratings.dat", 9), ("ratings.dat", 12), ("users.dat", 3)]
  assert_reasons(malformed, {
      ("movies.dat", 3): ("3 fields",),
      ("users.dat", 3): ("age", "twenty"),
      ("ratings.dat", 4): ("4 fields", "found 3"),
      ("ratings.dat", 5): ("rating", "five", "not a number"),
      ("ratings.dat", 6): ("user id", "1x"),
      ("ratings.dat", 7): ("movie id", "9x"),
      ("ratings.dat", 8): ("movie id 99", "movies.dat"),
      ("ratings.dat", 9): ("user id 7", "users.dat"),
      # The root cause, named: user 3's own line was rejected.
      ("ratings.dat", 12): ("user id 3 is not in users.dat: line 3 of "
                            "users.dat, which defines it, was rejected (age "
                            "'twenty' is not an integer)",),
  })
  rating_lines = [m for m in malformed if m.path.endswith("ratings.dat")]
  for m in rating_lines:
    assert m.offset == offsets[m.line - 1]
    assert m.text == ratings[m.line - 1]
    assert m.describe().startswith(f"{data / 'ratings.dat'}:{m.line}: ")
  # Blank lines are neither examples nor malformed.
  non_blank = sum(1 for line in ratings if line.strip())
  assert len(examples) + len(rating_lines) == non_blank


def test_csv_invalid_utf8_and_bad_quoting_are_malformed(tmp_path):
  data = tmp_path / "ml-latest"
  data.mkdir()
  write_lines(data / "movies.csv", [
      "movieId,title,genres",
      '1,"American President, The (1995)",Comedy|Drama|Romance',
      "2,Heat (1995),Action|Crime|Thriller",
      b"3,Caf\xe9 Society (2016),Comedy",  # latin-1 in a UTF-8 file
      '4,"Unclosed, title (1999),Drama',
  ])
  offsets = write_lines(data / "ratings.csv", [
      "userId,movieId,rating,timestamp",
      "1,1,4.0,964982703",
      b"1,2,4.0,96498\xff2703",
      "1,2,3.5",
      "1,3,4.0,964982800",  # movie 3's line is malformed
      "1,2,4.5,964982900",
  ])

  examples, malformed = read_movielens(data, tmp_path)

  assert sorted(e[F.FILE_OFFSET][0] for e in examples) == [
      offsets[1], offsets[5]]
  assert summarize(malformed) == [
      ("movies.csv", 4), ("movies.csv", 5),
      ("ratings.csv", 3), ("ratings.csv", 4), ("ratings.csv", 5)]
  assert_reasons(malformed, {
      ("movies.csv", 4): ("utf-8",),
      ("movies.csv", 5): ("quot",),
      ("ratings.csv", 3): ("utf-8",),
      ("ratings.csv", 4): ("4 fields", "found 3"),
      ("ratings.csv", 5): ("movie id 3", "movies.csv"),
  })
  invalid = next(m for m in malformed if m.path.endswith("ratings.csv"))
  assert invalid.offset == offsets[2]
  assert "96498" in invalid.text  # the bad line is kept, readable


def _exec_properties(data_dir: Path, **extra):
  return {**example_gen_component.executor_properties(
      MovieLensExampleGen(str(data_dir))), **extra}


def _run_executor(data_dir: Path, out_dir: Path, **extra):
  examples = standard_artifacts.Examples()
  examples.uri = str(out_dir)
  output_dict = {standard_component_specs.EXAMPLES_KEY: [examples]}
  gen.Executor().Do({}, output_dict, _exec_properties(data_dir, **extra))
  return examples


@pytest.fixture
def ml1m_one_bad_line(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  write_lines(data / "movies.dat", [
      "1::Toy Story (1995)::Animation|Children's|Comedy",
      "2::Jumanji (1995)::Adventure|Children's|Fantasy",
  ], encoding="latin-1")
  write_lines(data / "users.dat", ["1::F::1::10::48067", "2::M::56::16::70072"])
  write_lines(data / "ratings.dat", [
      "1::1::5::978300760",
      "",
      "1::2::bad::978302109",  # line 3
      "2::1::4::978301968",
      "2::2::3::978300275",
  ])
  return data


def test_executor_writes_split_report_and_properties(tmp_path,
                                                     ml1m_one_bad_line):
  out = tmp_path / "examples"
  examples = _run_executor(ml1m_one_bad_line, out,
                           **{example_gen_executor.MAX_MALFORMED_LINES: 1})

  assert examples.split_names == '["ratings"]'
  assert sorted(os.listdir(out)) == ["Split-ratings", layout.INGESTION_REPORT]
  shards = tf.io.gfile.glob(str(out / "Split-ratings" / "*.gz"))
  assert shards
  written = [feature_dict(tf.train.Example.FromString(r.numpy()))
             for r in tf.data.TFRecordDataset(shards, compression_type="GZIP")]
  assert sorted((e[F.USER_ID][0], e[F.ITEM_ID][0], e[F.RATING][0])
                for e in written) == [
                    ("1", "1", 5.0), ("2", "1", 4.0), ("2", "2", 3.0)]
  assert all(e[F.USER_GENDER] and e[F.ITEM_TITLE] for e in written)

  report = json.loads((out / layout.INGESTION_REPORT).read_text())
  ratings = str(ml1m_one_bad_line / "ratings.dat")
  assert report["format"] == "ml-1m"
  assert (report["examples"], report["malformed"]) == (3, 1)
  assert len(report["malformed_lines"]) == 1
  assert report["malformed_lines"][0].startswith(f"{ratings}:3: ")
  assert "bad" in report["malformed_lines"][0]

  assert examples.get_int_custom_property("num_examples") == 3
  assert examples.get_int_custom_property("malformed") == 1
  assert examples.get_string_custom_property("format") == "ml-1m"


def test_executor_fails_on_more_malformed_lines_than_tolerated(
    tmp_path, ml1m_one_bad_line):
  out, reports = tmp_path / "examples", tmp_path / "reports"
  with pytest.raises(IngestionError) as raised:
    # max_malformed_lines defaults to 0
    _run_executor(ml1m_one_bad_line, out, **{
        example_gen_executor.REPORTS_DIR: str(reports)})
  assert f"{ml1m_one_bad_line / 'ratings.dat'}:3" in str(raised.value)
  # TFX removes a failed execution's output: the report is kept outside it,
  # where the message says.
  kept = reports / layout.INGESTION_REPORT
  assert str(raised.value).endswith(f"the full report: {kept}")
  report = json.loads(kept.read_text())
  assert report["malformed"] == 1
  assert report["malformed_totals"] == [{
      "file": str(ml1m_one_bad_line / "ratings.dat"),
      "reason": "rating … is not a number", "lines": 1}]


def test_executor_fails_when_no_rating_is_readable(tmp_path):
  data = tmp_path / "data"
  data.mkdir()
  write_lines(data / "movies.dat", ["1::Toy Story (1995)::Comedy"])
  write_lines(data / "ratings.dat", ["1::1::x::978300760", "1::2::5::1"])
  with pytest.raises(IngestionError) as raised:
    _run_executor(data, tmp_path / "examples",
                  **{example_gen_executor.MAX_MALFORMED_LINES: 10})
  assert "no examples could be read" in str(raised.value)
  assert str(data / "ratings.dat") in str(raised.value)


def test_executor_ingests_one_span_with_the_newest_catalogs(tmp_path):
  """A data directory of spans: the execution reads the span TFX's driver
  resolved (exec_properties["span"]; the newest without the driver), its
  ratings only, with the movies and users of the newest span that has
  them."""
  data = tmp_path / "data"
  first, second = data / "span-01", data / "span-02"
  first.mkdir(parents=True)
  second.mkdir()
  write_lines(first / "movies.dat", ["1::Toy Story (1995)::Animation",
                                     "2::Jumanji (1995)::Adventure"])
  write_lines(first / "users.dat", ["1::F::1::10::48067"])
  write_lines(first / "ratings.dat", ["1::1::5::978300760"])
  write_lines(second / "ratings.dat", ["1::2::3::978400000",
                                       "1::1::4::978400001"])
  assert '"pattern": "span-{SPAN:2}/*"' in MovieLensExampleGen(
      str(data)).exec_properties["input_config"]

  def ingested(out, **span):
    examples = _run_executor(data, tmp_path / out, **span)
    with open(os.path.join(examples.uri, layout.INGESTION_REPORT)) as f:
      report = json.load(f)
    return report

  newest = ingested("newest")
  assert newest["examples"] == 2
  assert newest["files"] == [str(second / "ratings.dat"),
                             str(first / "movies.dat"),
                             str(first / "users.dat")]
  assert ingested("first", span=1)["examples"] == 1
  assert ingested("first again", span=1)["span"] == 1
