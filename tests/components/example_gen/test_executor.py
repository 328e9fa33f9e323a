"""The ExampleGens' shared executor: a Beam job that loses elements fails
the run."""
import apache_beam as beam
import pytest

from components.example_gen import executor as example_gen_executor
from components.lib import ingestion


def test_fewer_examples_written_than_made_fails_the_run(tmp_path):
  def made(n):
    counter = beam.metrics.Metrics.counter(example_gen_executor.NAMESPACE,
                                           example_gen_executor.MADE_COUNTER)
    counter.inc(n)
    return n

  pipeline = beam.Pipeline()
  _ = pipeline | beam.Create([3, 4]) | beam.Map(made)
  result = pipeline.run()
  result.wait_until_finish()
  example_gen_executor.check_all_written(result, 7)
  with pytest.raises(ingestion.IngestionError,
                     match="made 7 examples but 6 reached the output"):
    example_gen_executor.check_all_written(result, 6)
