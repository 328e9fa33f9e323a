"""The base of every error a user fixes in their input data.

`recsys` prints these as one `recsys: error: ...` line with exit code 1
(pipeline/cli/main.py); anything else is a bug and keeps its traceback.
Raised inside a TFX step, they reach the CLI through the in-process
runners unchanged.
"""


class InputError(ValueError):
  """Input the pipeline cannot use; the message names the file, the line
  and the value wherever there is one."""
