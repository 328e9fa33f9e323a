"""The machine a benchmark ran on, as its tables name it."""
import os
import platform


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f
                 if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  memory = ""
  try:
    with open("/proc/meminfo") as f:
      kib = int(next(line.split()[1] for line in f
                     if line.startswith("MemTotal")))
    memory = f", {kib / 2**20:.0f} GiB"
  except (OSError, StopIteration, ValueError):
    pass
  return f"{os.cpu_count()} cores {cpu}{memory}"
