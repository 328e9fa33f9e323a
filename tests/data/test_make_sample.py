"""The embedded sample is what data/make_sample.py writes, byte for byte."""
import filecmp
import os
import subprocess
import sys

from pipeline import PROJECT_ROOT

ROOT = PROJECT_ROOT
FILES = ["movies.dat", "users.dat", "ratings.dat"]


def test_generator_reproduces_the_committed_sample(tmp_path):
  subprocess.run([sys.executable, os.path.join(ROOT, "data", "make_sample.py"),
                  "--out-dir", str(tmp_path)], check=True, timeout=120)
  for name in FILES:
    assert filecmp.cmp(tmp_path / name, os.path.join(ROOT, "data", "sample", name),
                       shallow=False), name


def test_sample_is_small_and_latin1():
  sizes = [os.path.getsize(os.path.join(ROOT, "data", "sample", n)) for n in FILES]
  assert sum(sizes) < 3_000_000
  with open(os.path.join(ROOT, "data", "sample", "movies.dat"), "rb") as f:
    raw = f.read()
  # latin-1 bytes that are not valid UTF-8 (as in the real movies.dat).
  assert "é".encode("latin-1") in raw
  raw.decode("latin-1")
