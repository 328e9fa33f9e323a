"""Test input files whose byte offsets the tests know, and a Beam
PCollection collected into a file the test reads back."""
import pickle
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import apache_beam as beam

Line = Union[str, bytes]


def write_lines(path: Path, lines: Sequence[Line], encoding: str = "utf-8",
                eol: str = "\n", final_eol: bool = True) -> List[int]:
  """Writes lines (str encoded with `encoding`, bytes as they are) and returns
  the byte offset at which each line starts."""
  offsets, chunks, position = [], [], 0
  for i, line in enumerate(lines):
    raw = line if isinstance(line, bytes) else line.encode(encoding)
    end = eol.encode() if final_eol or i < len(lines) - 1 else b""
    offsets.append(position)
    chunks.append(raw + end)
    position += len(raw) + len(end)
  path.write_bytes(b"".join(chunks))
  return offsets


def reference_lines(data: bytes) -> List[Tuple[int, bytes]]:
  """(offset, line without its line break) for every line of data."""
  parts = data.split(b"\n")
  if parts[-1] == b"":  # data ends with a newline: no line after it
    parts.pop()
  result, offset = [], 0
  for part in parts:
    text = part[:-1] if part.endswith(b"\r") else part
    result.append((offset, text))
    offset += len(part) + 1
  return result


def _dump(values, path):
  with open(path, "wb") as f:
    pickle.dump(list(values), f)


def collect(pcoll, path: Path, label: str) -> None:
  """Writes the PCollection's elements to `path` when the pipeline runs."""
  _ = (pcoll
       | f"ToList{label}" >> beam.combiners.ToList()
       | f"Dump{label}" >> beam.Map(_dump, str(path)))


def load(path: Path) -> list:
  """The elements `collect` wrote."""
  with open(path, "rb") as f:
    return pickle.load(f)
