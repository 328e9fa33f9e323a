"""What `recsys latency` times: each query's invoke() alone with its inputs
set beforehand, the same query end to end, and the reference workload
interleaved for the ratio."""
import os

import pytest

from pipeline.bench import latency


class _Recorder:
  """Stands in for TFLiteRecommender (and its interpreter): records the
  calls in order."""

  def __init__(self):
    self.calls = []
    self.interpreter = self

  def invoke(self):
    self.calls.append("invoke")

  def set_inputs(self, history):
    self.calls.append(("set_inputs", tuple(history)))

  def recommend(self, history):
    self.calls.append(("recommend", tuple(history)))


def test_invoke_is_timed_after_its_inputs_are_set_then_the_whole_query():
  recorder = _Recorder()
  result = latency.measure_latency(recorder, [["a"], ["b"]])
  assert recorder.calls == [
      ("recommend", ("a",)),  # the warm-up call
      ("set_inputs", ("a",)), "invoke", ("recommend", ("a",)),
      ("set_inputs", ("b",)), "invoke", ("recommend", ("b",))]
  assert result["queries"] == 2
  for name in ("invoke", "end_to_end"):
    assert (0 <= result[f"{name}_median_ms"] <= result[f"{name}_p90_ms"]
            <= result[f"{name}_max_ms"])
  assert "invoke_ratio" not in result


def test_the_reference_workload_gives_invoke_as_a_ratio():
  if not os.path.exists(latency.REFERENCE_SCRIPT):
    pytest.skip(f"{latency.REFERENCE_SCRIPT} is absent (../shared beside "
                "the project)")
  with latency.reference_workload() as reference:
    assert reference is not None
    # Each query gives the reference new inputs, as the measured model gets.
    (first,) = [d["index"] for d in reference.interpreter.get_input_details()
                if d["name"].endswith("context_movie_id:0")]
    reference.next_query()
    before = reference.interpreter.get_tensor(first).copy()
    reference.next_query()
    assert (reference.interpreter.get_tensor(first) != before).any()
    result = latency.measure_latency(_Recorder(), [["a"]] * 20, reference)
  assert result["reference_median_ms"] > 0
  assert result["invoke_ratio"] == pytest.approx(
      result["invoke_median_ms"] / result["reference_median_ms"])


def test_without_the_reference_script_there_is_no_ratio(tmp_path):
  with latency.reference_workload(str(tmp_path / "absent.py")) as reference:
    assert reference is None
