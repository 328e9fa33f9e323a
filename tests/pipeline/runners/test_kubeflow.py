"""Kubeflow Pipelines: the compiled spec, the image it names, and the KFP
client calls that submit and schedule it.

No Kubeflow cluster runs here, so `recsys kubeflow run|schedule` is tested
against a loopback HTTP server that answers the KFP v2beta1 REST calls the
client makes (a contract test: it checks what is sent, not that a cluster
would run it).
"""
import http.server
import json
import os
import re
import threading

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
import pytest
import yaml

from pipeline import PROJECT_ROOT
from pipeline.cli import main as cli
from pipeline.runners import kubeflow

ROOT = PROJECT_ROOT
IMAGE = "registry.example/recsys:test"
PIPELINE_ROOT = "gs://bucket/recsys"
BEAM_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
STEPS = {
    "MovieLensExampleGen": "components.example_gen.movielens.executor.Executor",
    "ImportSchemaGen": "tfx.components.schema_gen.import_schema_gen.executor.Executor",
    "StatisticsGen": "tfx.components.statistics_gen.executor.Executor",
    "ExampleValidator": "tfx.components.example_validator.executor.Executor",
    "Sessionize": "components.sessionize.executor.Executor",
    "Transform": "tfx.components.transform.executor.Executor",
    "Trainer": "tfx.components.trainer.executor.GenericExecutor",
    "Evaluator": "tfx.components.evaluator.executor.Executor",
    "TFLitePusher": "components.tflite_pusher.executor.Executor",
    "candidate_trainer": "tfx.components.trainer.executor.GenericExecutor",
    "candidate_gen": "components.candidate_gen.executor.Executor",
    "ranker_trainer": "tfx.components.trainer.executor.GenericExecutor",
    "ranker_evaluator": "tfx.components.evaluator.executor.Executor",
    "ranker_pusher": "components.tflite_pusher.executor.Executor",
    "rating_trainer": "tfx.components.trainer.executor.GenericExecutor",
    "rating_evaluator": "tfx.components.evaluator.executor.Executor",
    "rating_pusher": "components.tflite_pusher.executor.Executor",
    "two_stage_evaluator": "components.two_stage_evaluator.executor.Executor",
}
# Each latest-blessed-model Resolver compiles into two MLMD query steps.
RESOLVERS = {f"{name}-{step}" for name in (
    "latest_blessed_model", "latest_blessed_rating_model") for step in (
        "model-blessing-resolver", "model-resolver")}
TASKS = set(STEPS) | RESOLVERS


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
  out = tmp_path_factory.mktemp("kubeflow")
  args = ["compile", "--target", "kubeflow", "--image", IMAGE,
          "--pipeline-root", PIPELINE_ROOT, "--set", "train.epochs=3"]
  args += [f"--beam-arg={a}" for a in BEAM_ARGS]
  assert cli.main(args + ["--output", str(out / "pipeline.json")]) == 0
  assert cli.main(args + ["--output", str(out / "pipeline.yaml")]) == 0
  return out


def _spec(compiled) -> pipeline_spec_pb2.PipelineSpec:
  with open(compiled / "pipeline.json", encoding="utf-8") as f:
    job = json_format.Parse(f.read(), pipeline_spec_pb2.PipelineJob())
  return json_format.ParseDict(json_format.MessageToDict(job.pipeline_spec),
                               pipeline_spec_pb2.PipelineSpec())


def _parameter(spec, task: str, name: str):
  value = spec.root.dag.tasks[task].inputs.parameters[name].runtime_value
  if value.HasField("constant"):  # pipeline spec 2.1
    return json_format.MessageToDict(value.constant)
  constant = value.constant_value  # 2.0, what TFX writes by default
  return getattr(constant, constant.WhichOneof("value"))


def test_the_spec_parses_with_every_component_its_image_and_executor(compiled):
  with open(compiled / "pipeline.json", encoding="utf-8") as f:
    job = json_format.Parse(f.read(), pipeline_spec_pb2.PipelineJob())
  assert job.runtime_config.gcs_output_directory == PIPELINE_ROOT
  spec = _spec(compiled)
  assert spec.pipeline_info.name == "recsys"
  assert set(spec.root.dag.tasks) == TASKS
  executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
  for step, executor_class in STEPS.items():
    label = spec.components[spec.root.dag.tasks[step].component_ref.name
                            ].executor_label
    container = executors[label]["container"]
    assert container["image"] == IMAGE
    assert container["command"] == [
        "python", "-m",
        "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
    args = container["args"]
    assert args[args.index("--executor_class_path") + 1] == executor_class
    # Every step gets the Beam arguments (TFX passes them to all).
    assert args[-len(BEAM_ARGS):] == BEAM_ARGS
  # The DAG: Sessionize waits for validation, the Pusher for the Evaluator.
  assert "ExampleValidator" in spec.root.dag.tasks["Sessionize"].dependent_tasks
  assert "Evaluator" in spec.root.dag.tasks["TFLitePusher"].dependent_tasks
  # The Evaluator's baseline is what the resolver finds in the cluster's MLMD.
  for task in RESOLVERS:
    label = spec.components[spec.root.dag.tasks[task].component_ref.name
                            ].executor_label
    assert "resolver" in executors[label], task
  for evaluator, resolver in (("Evaluator", "latest_blessed_model"),
                              ("rating_evaluator",
                               "latest_blessed_rating_model")):
    baseline = spec.root.dag.tasks[evaluator].inputs.artifacts[
        "baseline_model"]
    assert baseline.task_output_artifact.producer_task == (
        f"{resolver}-model-resolver")


def test_paths_name_files_in_the_image_and_code_is_imported_by_module(compiled):
  spec = _spec(compiled)
  schema = _parameter(spec, "ImportSchemaGen", "schema_file")
  assert schema == f"{kubeflow.IMAGE_ROOT}/schemas/movielens/schema.pbtxt"
  # The checkout holds what the image is built from.
  assert os.path.isfile(kubeflow.local_view(schema))
  data_dir = _parameter(spec, "MovieLensExampleGen", "input_base")
  assert data_dir == f"{kubeflow.IMAGE_ROOT}/data/sample"
  assert _parameter(spec, "Trainer", "run_fn") == (
      "components.user_modules.trainer.run_fn")
  assert _parameter(spec, "Transform", "preprocessing_fn") == (
      "components.user_modules.transform.preprocessing_fn")
  for task in spec.root.dag.tasks.values():
    assert "module_file" not in task.inputs.parameters
    assert "module_path" not in task.inputs.parameters
  assert _parameter(spec, "TFLitePusher", "push_dir") == (
      f"{PIPELINE_ROOT}/serving")
  # Each step gets its part of the config: the Trainer its sections, the
  # Pusher none.
  trainer = json.loads(_parameter(spec, "Trainer", "custom_config"))
  assert trainer["train"]["epochs"] == 3
  assert set(trainer) == {"features", "session", "model", "train", "serving",
                          "code_version"}
  assert "run_config" not in spec.root.dag.tasks["TFLitePusher"].inputs.parameters


def test_the_yaml_output_is_the_bare_pipeline_spec(compiled):
  with open(compiled / "pipeline.yaml", encoding="utf-8") as f:
    document = yaml.safe_load(f)
  spec = json_format.ParseDict(document, pipeline_spec_pb2.PipelineSpec())
  assert set(spec.root.dag.tasks) == TASKS
  assert kubeflow.read_spec(str(compiled / "pipeline.json"))[1] == PIPELINE_ROOT


def test_the_dockerfile_installs_the_project_where_the_spec_expects_it():
  with open(os.path.join(ROOT, "Dockerfile"), encoding="utf-8") as f:
    dockerfile = f.read()
  assert re.search(r"^FROM python:3\.10", dockerfile, re.M)
  assert re.search(rf"^WORKDIR {kubeflow.IMAGE_ROOT}$", dockerfile, re.M)
  assert "-c constraints.txt -e ." in dockerfile
  copied = re.findall(r"^COPY (\S+) \1$", dockerfile, re.M)
  assert {"components", "pipeline", "schemas", "data"} <= set(copied)
  assert "ENV TF_USE_LEGACY_KERAS=1" in dockerfile
  # Remote Beam workers boot from it; its Beam matches the pinned one.
  with open(os.path.join(ROOT, "constraints.txt"), encoding="utf-8") as f:
    beam = re.search(r"^apache-beam(?:\[\w+\])?==(\S+)$", f.read(), re.M)
  assert f"FROM apache/beam_python3.10_sdk:{beam.group(1)} AS beam_sdk" in (
      dockerfile)
  assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in dockerfile


def test_cron_expressions():
  assert kubeflow.kfp_cron("30 2 * * 1") == "0 30 2 * * 1"
  assert kubeflow.kfp_cron("0 30 2 * * 1") == "0 30 2 * * 1"
  with pytest.raises(cli.ConfigError, match="expected 5 fields"):
    kubeflow.kfp_cron("daily")


class FakeKfp(http.server.BaseHTTPRequestHandler):
  """Answers the KFP v2beta1 calls of kfp.Client; records each request."""
  requests = []

  def _reply(self, body):
    data = json.dumps(body).encode()
    self.send_response(200)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def do_GET(self):  # pylint: disable=invalid-name
    self.requests.append(("GET", self.path, None))
    if self.path.startswith("/apis/v2beta1/healthz"):
      self._reply({"multi_user": False})
    elif self.path.startswith("/apis/v2beta1/experiments"):
      self._reply({})  # no experiment of that name yet
    else:
      self.send_error(404)

  def do_POST(self):  # pylint: disable=invalid-name
    length = int(self.headers.get("Content-Length", 0))
    body = json.loads(self.rfile.read(length) or b"{}")
    self.requests.append(("POST", self.path, body))
    if self.path == "/apis/v2beta1/experiments":
      self._reply({"experiment_id": "exp-1", **body})
    elif self.path == "/apis/v2beta1/runs":
      self._reply({"run_id": "run-1", **body})
    elif self.path == "/apis/v2beta1/recurringruns":
      self._reply({"recurring_run_id": "rec-1", **body})
    else:
      self.send_error(404)

  def log_message(self, *args):  # quiet
    pass


@pytest.fixture()
def kfp_server():
  FakeKfp.requests = []
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKfp)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_address[1]}", FakeKfp.requests
  server.shutdown()
  server.server_close()


def _posted(requests, path):
  (body,) = [b for method, p, b in requests if method == "POST" and p == path]
  return body


def test_kubeflow_run_submits_the_compiled_spec(compiled, kfp_server, capsys):
  host, requests = kfp_server
  assert cli.main(["kubeflow", "run", "--spec", str(compiled / "pipeline.json"),
                   "--host", host, "--experiment", "nightly"]) == 0
  assert f"submitted run run-1 to {host}" in capsys.readouterr().out
  assert _posted(requests, "/apis/v2beta1/experiments")["display_name"] == (
      "nightly")
  run = _posted(requests, "/apis/v2beta1/runs")
  assert run["experiment_id"] == "exp-1"
  assert run["runtime_config"]["pipeline_root"] == PIPELINE_ROOT
  spec = json_format.ParseDict(run["pipeline_spec"],
                               pipeline_spec_pb2.PipelineSpec())
  assert set(spec.root.dag.tasks) == TASKS


def test_kubeflow_schedule_creates_a_recurring_run(compiled, kfp_server,
                                                   capsys):
  host, requests = kfp_server
  assert cli.main(["kubeflow", "schedule", "--spec",
                   str(compiled / "pipeline.yaml"), "--host", host,
                   "--cron", "0 3 * * *", "--name", "nightly-retrain"]) == 0
  assert "created recurring run rec-1" in capsys.readouterr().out
  recurring = _posted(requests, "/apis/v2beta1/recurringruns")
  assert recurring["display_name"] == "nightly-retrain"
  assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
  assert recurring["mode"] == "ENABLE"
  assert recurring["experiment_id"] == "exp-1"
  assert set(recurring["pipeline_spec"]["root"]["dag"]["tasks"]) == TASKS


def test_schedule_without_cron_is_a_clear_error(compiled, capsys):
  assert cli.main(["kubeflow", "schedule", "--spec",
                   str(compiled / "pipeline.json"), "--host",
                   "http://127.0.0.1:9"]) == 2
  assert "needs --cron EXPR" in capsys.readouterr().err


def test_a_file_that_is_not_a_compiled_pipeline_is_a_clear_error(tmp_path,
                                                                  capsys):
  bogus = tmp_path / "bogus.json"
  bogus.write_text('{"hello": 1}')
  assert cli.main(["kubeflow", "run", "--spec", str(bogus), "--host",
                   "http://127.0.0.1:9"]) == 2
  assert "neither a PipelineJob nor a PipelineSpec" in capsys.readouterr().err
