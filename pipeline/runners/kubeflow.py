"""Kubeflow Pipelines: compile the DAG to a KFP v2 pipeline spec, run it, or
schedule it.

TFX 1.16's Kubeflow runner is KubeflowV2DagRunner, which compiles the same
`create_pipeline` DAG that runs locally. Every step runs in one container
image (the project's Dockerfile) with the project installed at IMAGE_ROOT,
so executors, `preprocessing_fn` and `run_fn` are imported by module path
and nothing is uploaded at compile time. Paths of the config that are
relative (the data directory, the curated schemas) therefore name files in
the image; absolute paths and URIs (gs://...) are used as they are.

`submit` and `schedule` hand the compiled spec to a Kubeflow Pipelines API
server through the KFP client (REST API v2beta1).
"""
import dataclasses
import json
import os
import tempfile
from typing import Any, Dict, Optional, Tuple

from pipeline import PROJECT_ROOT
from pipeline.config import ConfigError, RunConfig

# Where the Dockerfile installs the project inside the image.
IMAGE_ROOT = "/opt/recsys"
DEFAULT_IMAGE = "ondevice-recsys:latest"
DEFAULT_EXPERIMENT = "recsys"


def local_view(path: str) -> str:
  """The checkout's copy of a path inside the image (the image is built
  from this checkout); other paths and URIs unchanged."""
  if path == IMAGE_ROOT or path.startswith(IMAGE_ROOT + "/"):
    return PROJECT_ROOT + path[len(IMAGE_ROOT):]
  return path


def compile_pipeline(config: RunConfig, output: str,
                     image: str = DEFAULT_IMAGE,
                     pipeline_root: Optional[str] = None) -> Dict[str, Any]:
  """Writes the KFP v2 spec of `config`'s pipeline to `output` (.json: a
  PipelineJob, .yaml: the bare PipelineSpec); returns the PipelineJob.

  `config` has its relative paths resolved against IMAGE_ROOT (see
  `load_config(base_dir=...)`). `pipeline_root` is where the steps write
  their artifacts (storage every step can reach, e.g. gs://bucket/recsys);
  pushed models land in <pipeline_root>/serving unless push_dir is set.
  """
  # pylint: disable=import-outside-toplevel
  from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as kubeflow
  from pipeline.dag.pipeline import create_pipeline

  if pipeline_root:
    config = dataclasses.replace(
        config, output_dir=pipeline_root,
        push_dir=config.push_dir or os.path.join(pipeline_root, "serving"))
  pipeline_root = pipeline_root or config.pipeline_root
  # Which optional feature groups apply is read from the data (here, from
  # the checkout's copy of the image's files, or from the URI).
  config = config.with_data_features(local_view(config.data.data_dir))
  dag = create_pipeline(config, pipeline_root=pipeline_root,
                        schemas_dir=os.path.join(IMAGE_ROOT, "schemas"),
                        resolve_spans=False)
  output = os.path.abspath(output)
  compiler = kubeflow.KubeflowV2DagRunner(
      config=kubeflow.KubeflowV2DagRunnerConfig(default_image=image),
      output_dir=os.path.dirname(output),
      output_filename=os.path.basename(output))
  return compiler.run(dag, write_out=True)


def read_spec(path: str) -> Tuple[Dict[str, Any], Optional[str]]:
  """(PipelineSpec as a dict, pipeline root or None) of a compiled file."""
  import yaml  # pylint: disable=import-outside-toplevel
  try:
    with open(path, encoding="utf-8") as f:
      document = yaml.safe_load(f)  # JSON is YAML
  except OSError as e:
    raise ConfigError(f"cannot read the compiled pipeline {path}: {e}") from e
  if not isinstance(document, dict):
    raise ConfigError(f"{path}: not a compiled pipeline")
  if "pipelineSpec" in document:  # a PipelineJob (the .json output)
    root = document.get("runtimeConfig", {}).get("gcsOutputDirectory")
    return document["pipelineSpec"], root
  if "root" in document and "deploymentSpec" in document:  # a PipelineSpec
    return document, document.get("defaultPipelineRoot")
  raise ConfigError(f"{path}: neither a PipelineJob nor a PipelineSpec "
                    "(write one with `recsys compile --target kubeflow`)")


def kfp_cron(expression: str) -> str:
  """KFP's 6-field cron (seconds first) from a 5- or 6-field expression."""
  fields = expression.split()
  if len(fields) == 5:
    return " ".join(["0"] + fields)
  if len(fields) == 6:
    return " ".join(fields)
  raise ConfigError(f"--cron {expression!r}: expected 5 fields (minute hour "
                    "day month weekday) or 6 (with seconds first)")


def _client(host: str):
  import kfp  # pylint: disable=import-outside-toplevel
  return kfp.Client(host=host)


def _package(spec: Dict[str, Any], directory: str) -> str:
  """The spec as the YAML package the KFP client reads."""
  path = os.path.join(directory, "pipeline.yaml")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(spec, f)
  return path


def submit(spec_path: str, host: str, experiment: str = DEFAULT_EXPERIMENT,
           run_name: Optional[str] = None) -> str:
  """Starts one run of a compiled pipeline; returns the run id."""
  spec, root = read_spec(spec_path)
  client = _client(host)
  with tempfile.TemporaryDirectory() as directory:
    result = client.create_run_from_pipeline_package(
        _package(spec, directory), run_name=run_name or spec[
            "pipelineInfo"]["name"], experiment_name=experiment,
        pipeline_root=root)
  return result.run_id


def schedule(spec_path: str, host: str, cron: str,
             experiment: str = DEFAULT_EXPERIMENT,
             name: Optional[str] = None) -> str:
  """Creates a recurring run on a cron schedule; returns its id."""
  spec, root = read_spec(spec_path)
  cron = kfp_cron(cron)
  client = _client(host)
  experiment_id = client.create_experiment(name=experiment).experiment_id
  with tempfile.TemporaryDirectory() as directory:
    recurring = client.create_recurring_run(
        experiment_id=experiment_id,
        job_name=name or f"{spec['pipelineInfo']['name']} ({cron})",
        cron_expression=cron, pipeline_package_path=_package(spec, directory),
        pipeline_root=root, no_catchup=True)
  return recurring.recurring_run_id
