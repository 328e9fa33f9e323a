"""Writing test input files whose byte offsets the tests know."""
from pathlib import Path
from typing import List, Sequence, Union

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
