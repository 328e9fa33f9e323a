"""Rows given more than once: the policy, and finding them in split files."""
import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
import pytest

from components.lib import duplicates
from components.lib import ingestion


def test_resolve_keeps_the_first_or_the_last_or_none():
  rows = [(3, "a"), (7, "b"), (9, "c")]
  assert duplicates.resolve(rows, "first") == ((3, "a"), [(7, "b"), (9, "c")])
  assert duplicates.resolve(rows, "last") == ((9, "c"), [(3, "a"), (7, "b")])
  assert duplicates.resolve(rows, "fail") == (None, rows)


def test_reason_names_the_setting_and_what_it_keeps():
  assert duplicates.reason("movie id 2 is defined", 2, "movies.dat", "fail",
                           lines="2, 4") == (
      "movie id 2 is defined on 2 lines of movies.dat (2, 4); "
      "data.duplicates=first or last keeps one")
  assert duplicates.reason("user 1 rated movie 3", 3, "u.data", "last") == (
      "user 1 rated movie 3 on 3 lines of u.data; data.duplicates=last keeps "
      "the last")
  assert duplicates.reported_kind("fail", duplicates.INTERACTIONS) == (
      ingestion.MALFORMED)
  assert duplicates.reported_kind("first", duplicates.INTERACTIONS) == (
      duplicates.INTERACTIONS)


def _key(text):
  user, item, _ = text.split(",")
  if not user.isdigit():
    raise ingestion.MalformedLineError("not a user")
  return user, item


def _subject(key):
  return f"user {key[0]} rated movie {key[1]}"


@pytest.mark.parametrize("bucket_bytes", [0, 16], ids=["shuffle", "disk"])
@pytest.mark.parametrize("policy", ["fail", "first", "last"])
def test_find_duplicates_in_each_file(tmp_path, policy, bucket_bytes):
  lines = ["user,item,rating",  # a header
           "1,10,5", "1,11,4", "x,10,3", "x,10,3",  # malformed: the parser's
           "2,10,1", "1,10,5", "", "2,10,2", "1,10,3"]
  first = tmp_path / "a.csv"
  first.write_text("".join(f"{x}\n" for x in lines))
  second = tmp_path / "b.csv"  # the same key in another file is no duplicate
  second.write_text("user,item,rating\n1,10,5\n")
  offsets = {}
  at = 0
  for number, line in enumerate(lines, start=1):
    offsets[number] = at
    at += len(line) + 1
  # Lines 2, 7, 10 hold user 1's movie 10; lines 6, 9 user 2's.
  skipped = {"fail": [2, 7, 10, 6, 9], "first": [7, 10, 9],
             "last": [2, 7, 6]}[policy]
  with beam.Pipeline() as pipeline:
    skip, reported = pipeline | duplicates.FindDuplicates(  # pylint: disable=no-value-for-parameter
        [str(first), str(second)], _key, _subject, policy,
        skip_first_line=True, spill_dir=str(tmp_path / "spill"),
        bucket_bytes=bucket_bytes)
    assert_that(skip, equal_to([((str(first), offsets[n]), True)
                                for n in skipped]), label="Skip")
    assert_that(
        reported | beam.Map(lambda m: (m.offset, m.reason.split(";")[0])),
        equal_to([(offsets[n], {
            2: "user 1 rated movie 10 on 3 lines of a.csv",
            7: "user 1 rated movie 10 on 3 lines of a.csv",
            10: "user 1 rated movie 10 on 3 lines of a.csv",
            6: "user 2 rated movie 10 on 2 lines of a.csv",
            9: "user 2 rated movie 10 on 2 lines of a.csv"}[n])
                  for n in skipped]), label="Reported")


def test_identical_lines_are_said_to_be_identical(tmp_path):
  path = tmp_path / "r.csv"
  path.write_text("1,10,5\n1,10,5\n")
  with beam.Pipeline() as pipeline:
    _, reported = pipeline | duplicates.FindDuplicates(  # pylint: disable=no-value-for-parameter
        [str(path)], _key, _subject, "first")
    assert_that(reported | beam.Map(lambda m: m.reason), equal_to([
        "user 1 rated movie 10 identically on 2 lines of r.csv; "
        "data.duplicates=first keeps the first"]))
