"""The bad-input suite: damaged MovieLens files of the three layouts and
damaged Ali-CCP files, one kind of damage at a time, through the ingestion
executor as TFX runs it.

Each case asserts the outcome (rejected or accepted); for a rejection, that
the message names the file, the line and the value, root causes (catalog
lines) first, and where the kept report is; either way, that every non-blank
line of the interactions file is an example or a reported drop.
"""
import dataclasses
import gzip
import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import pytest
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs

from components.example_gen import component as base_component
from components.example_gen import executor as base_executor
from components.example_gen.aliccp import executor as aliccp_executor
from components.example_gen.aliccp.component import AliCCPExampleGen
from components.example_gen.movielens import executor as movielens_executor
from components.example_gen.movielens.component import MovieLensExampleGen
from components.lib import aliccp_format as A
from components.lib import duplicates
from components.lib import layout
from components.lib.ingestion import IngestionError
from data import make_aliccp
from pipeline.dag.pipeline import schema_file

GENRE_FLAGS = "|".join(["0"] * 18 + ["1"])  # Western, of u.genre's 19

CLEAN: Dict[str, Dict[str, List[str]]] = {
    "ml-1m": {
        "movies.dat": ["1::Toy Story (1995)::Animation|Children's|Comedy",
                       "2::Jumanji (1995)::Adventure|Children's|Fantasy",
                       "3::Heat (1995)::Action|Crime|Thriller"],
        "users.dat": ["1::F::1::10::48067", "2::M::56::16::70072"],
        "ratings.dat": ["1::1::5::978300760", "1::2::3::978302109",
                        "2::1::4::978301968", "2::3::2::978300275"],
    },
    "ml-100k": {
        "u.item": [f"{i}|{t}|01-Jan-1995||http://x|{GENRE_FLAGS}"
                   for i, t in ((1, "Toy Story (1995)"),
                                (2, "GoldenEye (1995)"),
                                (3, "Four Rooms (1995)"))],
        "u.user": ["1|24|M|technician|85711", "2|53|F|other|94043"],
        "u.data": ["1\t1\t5\t874965758", "1\t2\t3\t876893171",
                   "2\t1\t4\t878542960", "2\t3\t2\t876893119"],
    },
    "ml-csv": {
        "movies.csv": ["movieId,title,genres",
                       "1,Toy Story (1995),Adventure|Animation",
                       '2,"American President, The (1995)",Comedy|Drama',
                       "3,Heat (1995),Action|Crime"],
        "ratings.csv": ["userId,movieId,rating,timestamp",
                        "1,1,4.0,964982703", "1,2,4.5,964981247",
                        "2,1,3.0,964982224", "2,3,5.0,964983815"],
    },
}
WHOLE_FILE = -1
INTERACTIONS = {"ml-1m": "ratings.dat", "ml-100k": "u.data",
                "ml-csv": "ratings.csv"}


@dataclasses.dataclass
class Rejected:
  """What the message names: the file, its line (None: the file as a
  whole) and the value; `first`: the file whose line comes first (the root
  cause, when it is not `file`)."""
  file: str
  line: Optional[int]
  value: str
  first: str = ""


@dataclasses.dataclass
class Case:
  layout: str
  name: str
  # (file name, 1-based line, 0 to append or WHOLE_FILE, new content or
  # None to delete)
  edits: List[Tuple[str, int, Optional[bytes]]]
  rejected: Optional[Rejected] = None
  settings: Dict[str, object] = dataclasses.field(default_factory=dict)
  # Accepted: reported kind -> count.
  reported: Dict[str, int] = dataclasses.field(default_factory=dict)
  check: Optional[Callable[[List[tf.train.Example]], None]] = None


def _titles(examples: List[tf.train.Example]) -> Dict[str, str]:
  return {e.features.feature["item_id"].bytes_list.value[0].decode():
          e.features.feature["item_title"].bytes_list.value[0].decode("utf-8")
          for e in examples}


def _title_is(item: str, title: str):
  def check(examples):
    assert _titles(examples)[item] == title
  return check


def _rating_is(examples: List[tf.train.Example], user: str, item: str,
               rating: float) -> None:
  ratings = [e.features.feature["rating"].float_list.value[0]
             for e in examples
             if e.features.feature["user_id"].bytes_list.value[0] == b(user)
             and e.features.feature["item_id"].bytes_list.value[0] == b(item)]
  assert ratings == [rating]


def b(text: str, encoding: str = "utf-8") -> bytes:
  return text.encode(encoding)


MOVIELENS_CASES = [
    # Numbers a tf.Example cannot hold.
    Case("ml-1m", "timestamp beyond int64",
         [("ratings.dat", 2, b"1::2::3::99999999999999999999")],
         Rejected("ratings.dat", 2, "99999999999999999999")),
    Case("ml-1m", "age beyond int64",
         [("users.dat", 2, b"2::M::99999999999999999999::16::70072")],
         Rejected("users.dat", 2, "99999999999999999999")),
    Case("ml-100k", "timestamp beyond int64",
         [("u.data", 3, b"2\t1\t4\t-99999999999999999999")],
         Rejected("u.data", 3, "-99999999999999999999")),
    Case("ml-100k", "age beyond int64",
         [("u.user", 1, b"1|99999999999999999999|M|technician|85711")],
         Rejected("u.user", 1, "99999999999999999999")),
    Case("ml-csv", "rating beyond float32",
         [("ratings.csv", 3, b"1,2,1e39,964981247")],
         Rejected("ratings.csv", 3, "1e39")),
    Case("ml-1m", "rating NaN", [("ratings.dat", 1, b"1::1::nan::978300760")],
         Rejected("ratings.dat", 1, "nan")),
    Case("ml-1m", "rating infinite",
         [("ratings.dat", 4, b"2::3::inf::978300275")],
         Rejected("ratings.dat", 4, "inf")),
    Case("ml-1m", "rating not a number",
         [("ratings.dat", 3, b"2::1::four::978301968")],
         Rejected("ratings.dat", 3, "four")),
    # Values outside the curated schema's domains, named with their line.
    Case("ml-1m", "rating 6", [("ratings.dat", 2, b"1::2::6::978302109")],
         Rejected("ratings.dat", 2, "rating 6 is above 5")),
    Case("ml-100k", "rating 0", [("u.data", 1, b"1\t1\t0\t874965758")],
         Rejected("u.data", 1, "rating 0 is below 0.5")),
    Case("ml-csv", "negative timestamp",
         [("ratings.csv", 4, b"2,1,3.0,-5")],
         Rejected("ratings.csv", 4, "timestamp -5 is below 0")),
    Case("ml-1m", "unknown genre",
         [("movies.dat", 3, b"3::Heat (1995)::Action|Sci-fi")],
         Rejected("movies.dat", 3, "'Sci-fi' is not in the domain",
                  first="movies.dat")),
    Case("ml-1m", "gender X", [("users.dat", 1, b"1::X::1::10::48067")],
         Rejected("users.dat", 1, "user_gender 'X'", first="users.dat")),
    Case("ml-1m", "age 0", [("users.dat", 2, b"2::M::0::16::70072")],
         Rejected("users.dat", 2, "user_age 0 is below 1", first="users.dat")),
    Case("ml-1m", "year 1800", [("movies.dat", 1,
                                 b"1::Toy Story (1800)::Animation")],
         Rejected("movies.dat", 1, "item_year 1800 is below 1870",
                  first="movies.dat")),
    # Broken lines.
    Case("ml-1m", "three fields", [("ratings.dat", 2, b"1::2::3")],
         Rejected("ratings.dat", 2, "1::2::3")),
    Case("ml-1m", "binary bytes", [("ratings.dat", 0, b"\x00\xff\xfe\x01")],
         Rejected("ratings.dat", 5, "\\x00")),
    Case("ml-csv", "invalid UTF-8",
         [("ratings.csv", 2, b"1,1,4.0,96498\xff2703")],
         Rejected("ratings.csv", 2, "96498")),
    Case("ml-100k", "genre flag 2",
         [("u.item", 3, b("3|Four Rooms (1995)|01-Jan-1995||http://x|"
                          + "|".join(["0"] * 18 + ["2"])))],
         Rejected("u.item", 3, "Four Rooms", first="u.item")),
    # Unknown ids and root causes: the catalog line comes first.
    Case("ml-1m", "unknown movie", [("ratings.dat", 0, b"1::99::3::978300761")],
         Rejected("ratings.dat", 5, "movie id 99 is not in movies.dat")),
    Case("ml-1m", "unknown user", [("ratings.dat", 0, b"7::1::3::978300761")],
         Rejected("ratings.dat", 5, "user id 7 is not in users.dat")),
    Case("ml-1m", "bad movie line", [("movies.dat", 2, b"2::Jumanji (1995)")],
         Rejected("movies.dat", 2, "2::Jumanji (1995)", first="movies.dat")),
    Case("ml-1m", "bad user line", [("users.dat", 2, b"2::M::old::16::70072")],
         Rejected("users.dat", 2, "old", first="users.dat")),
    Case("ml-100k", "bad u.item line", [("u.item", 1, b"1|Toy Story")],
         Rejected("u.item", 1, "1|Toy Story", first="u.item")),
    Case("ml-csv", "bad CSV quoting",
         [("movies.csv", 3, b'2,"American President, The (1995),Comedy')],
         Rejected("movies.csv", 3, "American President", first="movies.csv")),
    # Duplicates: a movie defined twice cannot be right both times.
    Case("ml-1m", "movie defined twice",
         [("movies.dat", 0, b"2::Heat (1995)::Action")],
         Rejected("movies.dat", 2, "movie id 2 is defined on 2 lines of "
                  "movies.dat (2, 4)", first="movies.dat")),
    Case("ml-100k", "user defined twice",
         [("u.user", 0, b"2|30|M|writer|10003")],
         Rejected("u.user", 2, "user id 2 is defined on 2 lines of u.user",
                  first="u.user")),
    Case("ml-1m", "movie defined twice, keep the first",
         [("movies.dat", 0, b"2::Heat (1995)::Action")],
         settings={base_executor.DUPLICATES_POLICY: "first"},
         reported={duplicates.DEFINITIONS: 1},
         check=_title_is("2", "Jumanji (1995)")),
    Case("ml-1m", "movie defined twice, keep the last",
         [("movies.dat", 0, b"2::Heat (1995)::Action")],
         settings={base_executor.DUPLICATES_POLICY: "last"},
         reported={duplicates.DEFINITIONS: 1},
         check=_title_is("2", "Heat (1995)")),
    # A rating on two lines: the same line twice, or two ratings.
    Case("ml-1m", "rating line twice",
         [("ratings.dat", 0, b"1::1::5::978300760")],
         Rejected("ratings.dat", 5, "user 1 rated movie 1 identically on 2 "
                  "lines of ratings.dat")),
    Case("ml-100k", "movie rated twice",
         [("u.data", 0, b"1\t2\t4\t876893999")],
         Rejected("u.data", 2, "user 1 rated movie 2 on 2 lines of u.data")),
    Case("ml-1m", "rating line twice, keep the first",
         [("ratings.dat", 0, b"2::3::2::978300275")],
         settings={base_executor.DUPLICATES_POLICY: "first"},
         reported={duplicates.INTERACTIONS: 1}),
    Case("ml-csv", "movie rated twice, keep the last",
         [("ratings.csv", 0, b"1,2,2.0,964990000")],
         settings={base_executor.DUPLICATES_POLICY: "last"},
         reported={duplicates.INTERACTIONS: 1},
         check=lambda examples: _rating_is(examples, "1", "2", 2.0)),
    # Encodings: accented titles read right from latin-1 and from UTF-8.
    Case("ml-1m", "UTF-8 movies.dat",
         [("movies.dat", 3, b("3::River Noël (2001)::Drama"))],
         check=_title_is("3", "River Noël (2001)")),
    Case("ml-1m", "latin-1 movies.dat",
         [("movies.dat", 3, b("3::River Noël (2001)::Drama", "latin-1"))],
         check=_title_is("3", "River Noël (2001)")),
    Case("ml-100k", "UTF-8 u.item",
         [("u.item", 2, b(f"2|Café Society (2016)|01-Jan-2016||x|"
                          f"{GENRE_FLAGS}"))],
         check=_title_is("2", "Café Society (2016)")),
    # Accepted as documented.
    Case("ml-1m", "blank lines", [("ratings.dat", 2, b""),
                                  ("ratings.dat", 0, b"   ")]),
    Case("ml-1m", "one bad line tolerated",
         [("ratings.dat", 1, b"1::1::x::978300760")],
         settings={base_executor.MAX_MALFORMED_LINES: 1},
         reported={"malformed": 1}),
    # Whole files.
    Case("ml-1m", "two layouts in one directory",
         [("ratings.csv", 0, b"userId,movieId,rating,timestamp"),
          ("movies.csv", 0, b"movieId,title,genres")],
         Rejected("ratings.csv", None, "data.layout")),
    Case("ml-csv", "CSV header missing", [("ratings.csv", 1, None)],
         Rejected("ratings.csv", 1, "userId,movieId,rating,timestamp")),
    Case("ml-1m", "gzip posing as ratings.dat",
         [("ratings.dat", WHOLE_FILE, gzip.compress(b"1::1::5::978300760\n"))],
         Rejected("ratings.dat", 1, "\\x1f\\x8b")),
    Case("ml-100k", "u.item missing", [("u.item", WHOLE_FILE, None)],
         Rejected("u.item", None, "not found")),
    Case("ml-1m", "empty movies file",
         [(name, 1, None) for name in ["movies.dat"] * 3],
         Rejected("movies.dat", None, "is empty")),
]


def _write(directory: Path, files: Dict[str, List[str]]) -> None:
  directory.mkdir()
  for name, lines in files.items():
    encoding = "utf-8" if name.endswith(".csv") else "latin-1"
    (directory / name).write_bytes(
        b"".join(line.encode(encoding) + b"\n" for line in lines))


def _edit(directory: Path, edits) -> None:
  for name, line, content in edits:
    path = directory / name
    if line == WHOLE_FILE:
      if content is None:
        path.unlink()
      else:
        path.write_bytes(content)
      continue
    lines = path.read_bytes().split(b"\n")[:-1] if path.exists() else []
    if line == 0:
      lines.append(content)
    elif content is None:
      del lines[line - 1]
    else:
      lines[line - 1] = content
    path.write_bytes(b"".join(x + b"\n" for x in lines))


def _run(component, executor_class, data_dir: Path, out: Path,
         settings) -> Tuple[List[tf.train.Example], Dict]:
  """Runs the executor as TFX would; -> (examples, the kept report)."""
  examples = standard_artifacts.Examples()
  examples.uri = str(out / "examples")
  properties = {**base_component.executor_properties(component),
                base_executor.REPORTS_DIR: str(out / "reports"), **settings}
  executor_class(base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=[])).Do(
          {}, {standard_component_specs.EXAMPLES_KEY: [examples]}, properties)
  written = [tf.train.Example.FromString(r.numpy()) for r in
             tf.data.TFRecordDataset(
                 tf.io.gfile.glob(f"{examples.uri}/Split-*/*.gz"),
                 compression_type="GZIP")]
  return written, _kept_report(out)


def _kept_report(out: Path) -> Dict:
  return json.loads((out / "reports" / layout.INGESTION_REPORT).read_text())


def _non_blank_lines(path: Path, header: bool) -> int:
  lines = [x for x in path.read_bytes().split(b"\n") if x.strip()]
  return len(lines) - (1 if header else 0)


def _assert_rejected(raised: IngestionError, data_dir: Path,
                     rejected: Rejected) -> None:
  message = str(raised)
  if rejected.line is None:  # the directory and the file's name
    assert str(data_dir) in message and rejected.file in message, message
  else:
    assert f"{data_dir / rejected.file}:{rejected.line}" in message, message
  assert rejected.value in message, message
  if rejected.first:
    # The first file:line named is the root cause's.
    named = [line.strip() for line in message.splitlines()
             if line.strip().startswith(str(data_dir)) and ":" in line.strip()[
                 len(str(data_dir)):]]
    assert named[0].startswith(str(data_dir / rejected.first)), message


@pytest.mark.parametrize("case", MOVIELENS_CASES,
                         ids=[f"{c.layout}: {c.name}" for c in MOVIELENS_CASES])
def test_movielens_bad_input(tmp_path, case):
  data_dir = tmp_path / case.layout
  _write(data_dir, CLEAN[case.layout])
  _edit(data_dir, case.edits)
  component = MovieLensExampleGen(str(data_dir),
                                  schema_file=schema_file("movielens"))
  if case.rejected:
    with pytest.raises(IngestionError) as raised:
      _run(component, movielens_executor.Executor, data_dir, tmp_path,
           case.settings)
    _assert_rejected(raised.value, data_dir, case.rejected)
    # Nothing was written for the next step: TFX removes the output of a
    # failed execution, and the report kept outside it adds up.
    if (tmp_path / "reports").exists():
      report = _kept_report(tmp_path)
      assert str(tmp_path / "reports" / layout.INGESTION_REPORT) in str(
          raised.value)
      _assert_counts_add_up(report, data_dir, case)
    return
  examples, report = _run(component, movielens_executor.Executor, data_dir,
                          tmp_path, case.settings)
  _assert_counts_add_up(report, data_dir, case)
  assert len(examples) == report["examples"]
  for kind, count in case.reported.items():
    assert report[kind] == count, (kind, report)
  if case.check:
    case.check(examples)


def _assert_counts_add_up(report: Dict, data_dir: Path, case: Case) -> None:
  """Every non-blank line of the interactions file is an example or a
  reported drop (of any kind)."""
  interactions = data_dir / INTERACTIONS[case.layout]
  dropped = sum(t["lines"] for kind, totals in report.items()
                if kind.endswith("_totals") for t in totals
                if t["file"] == str(interactions))
  assert report["examples"] + dropped == _non_blank_lines(
      interactions, header=case.layout == "ml-csv"), report


ITEM = "205\x024100001\x031.0"


@pytest.mark.parametrize("file, line, value, malformed", [
    ("skeleton", "99999999999999999999,1,0,{key},1," + ITEM,
     "99999999999999999999", 1),
    ("skeleton", "900001,1,0,{key},1,205\x0299999999999999999999\x031.0",
     "99999999999999999999", 1),
    ("skeleton", "900001,1,0,{key},1,205\x024100001\x03nan", "nan", 1),
    ("skeleton", "900001,2,0,{key},1," + ITEM, "must be 0 or 1", 1),
    ("skeleton", "900001,1,0,{key},2," + ITEM + "\x01508\x027\x03-0.5",
     "cross_user_category_item_category_weight -0.5 is below 0", 1),
    ("skeleton", "0,1,0,{key},1," + ITEM, "sample_id 0 is below 1", 1),
    # Both lines of a repeated sample id, and of a repeated key.
    ("skeleton", "1,0,0,{key},1," + ITEM, "sample_id 1 is on 2 lines of "
     "sample_skeleton_train.csv; data.duplicates=first or last keeps one", 2),
    ("common", "{common}", "common_feature_index {key} is defined on 2 lines "
     "of common_features_train.csv", 2),
], ids=["sample_id beyond int64", "feature id beyond int64",
        "feature value NaN", "click 2", "negative weight", "sample_id 0",
        "sample_id repeated", "common features row repeated"])
def test_aliccp_bad_input(tmp_path, file, line, value, malformed):
  root = tmp_path / "aliccp"
  make_aliccp.generate(str(root), impressions=200, seed=3)
  paths = {"skeleton": A.skeleton_path(str(root), "train"),
           "common": A.common_features_path(str(root), "train")}
  with open(paths["common"], encoding="utf-8") as f:
    common = f.readline().rstrip("\n")
  key = common.split(",", 1)[0]
  path = paths[file]
  with open(path, encoding="utf-8") as f:
    lines = sum(1 for _ in f)
  with open(path, "a", encoding="utf-8") as f:
    f.write(line.format(key=key, common=common) + "\n")
  component = AliCCPExampleGen(str(root), group_bucket_bytes=0,
                               schema_file=schema_file("aliccp"))
  with pytest.raises(IngestionError) as raised:
    _run(component, aliccp_executor.Executor, root, tmp_path, {})
  message = str(raised.value)
  assert f"{path}:{lines + 1}" in message, message
  assert value.format(key=key) in message, message
  if malformed == 2:  # the first line of the two is named too
    assert f"{path}:1:" in message, message
  report = _kept_report(tmp_path)
  assert report["malformed"] == malformed
