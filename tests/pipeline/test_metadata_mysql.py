"""MLMD in a real MySQL-protocol server (MariaDB, started here on loopback):
a TFX run records its lineage there, a second run is served from the cache,
and `recsys`'s summary reads it back; no SQLite file is written.

Needs Debian's mariadb-server (`.ci/run` installs it); skips without it.
"""
import os
import shutil
import socket
import subprocess
import time

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
import pytest
from tfx import v1 as tfx
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from pipeline import metadata
from pipeline.config import load_config
from pipeline.dag.pipeline import schema_file
from pipeline.results import outputs


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _wait_for(port: int, server: subprocess.Popen, log: str) -> None:
  deadline = time.monotonic() + 60
  while time.monotonic() < deadline:
    if server.poll() is not None:
      with open(log, encoding="utf-8", errors="replace") as f:
        raise RuntimeError(f"the database server exited: {f.read()[-2000:]}")
    try:
      with socket.create_connection(("127.0.0.1", port), timeout=1):
        return
    except OSError:
      time.sleep(0.2)
  raise RuntimeError(f"the database server did not listen on {port} in 60 s")


@pytest.fixture(scope="module")
def mysql_env(tmp_path_factory):
  """A private MariaDB on a loopback port with a password user; yields the
  RECSYS_MYSQL_* environment that reaches it."""
  server = shutil.which("mariadbd") or shutil.which("mysqld")
  install = shutil.which("mariadb-install-db") or shutil.which(
      "mysql_install_db")
  client = shutil.which("mariadb") or shutil.which("mysql")
  if not (server and install and client):
    pytest.skip("no MariaDB/MySQL server on this machine (Debian's "
                "mariadb-server; .ci/run installs it)")
  root = tmp_path_factory.mktemp("mysql")
  data, log = root / "data", str(root / "server.log")
  as_root = ["--user=root"] if os.geteuid() == 0 else []
  subprocess.run([install, "--no-defaults", f"--datadir={data}", *as_root,
                  "--auth-root-authentication-method=normal"],
                 check=True, capture_output=True, timeout=120)
  port = _free_port()
  process = subprocess.Popen(
      [server, "--no-defaults", f"--datadir={data}", *as_root,
       "--bind-address=127.0.0.1", f"--port={port}",
       f"--socket={root / 'server.sock'}", f"--log-error={log}",
       f"--pid-file={root / 'server.pid'}"])
  try:
    _wait_for(port, process, log)
    # Anonymous accounts would shadow the user for connections from here.
    sql = ("DELETE FROM mysql.global_priv WHERE User='';"
           "FLUSH PRIVILEGES;"
           "CREATE USER 'tfx'@'%' IDENTIFIED BY 'pw-for-tests';"
           "GRANT ALL ON *.* TO 'tfx'@'%';")
    subprocess.run([client, "--no-defaults", "-h127.0.0.1", f"-P{port}",
                    "-uroot", "-e", sql], check=True, capture_output=True,
                   timeout=60)
    yield {"RECSYS_MYSQL_HOST": "127.0.0.1", "RECSYS_MYSQL_PORT": str(port),
           "RECSYS_MYSQL_DATABASE": "recsys_mlmd", "RECSYS_MYSQL_USER": "tfx",
           "RECSYS_MYSQL_PASSWORD": "pw-for-tests"}
  finally:
    process.terminate()
    process.wait(timeout=60)


@pytest.mark.e2e
def test_runs_share_lineage_and_cache_through_mysql(mysql_env, tmp_path,
                                                    monkeypatch):
  for name, value in mysql_env.items():
    monkeypatch.setenv(name, value)
  config = load_config(values={"output_dir": str(tmp_path)},
                       overrides=["metadata.backend=mysql"])
  assert "pw-for-tests" not in config.to_json()

  def run_once():
    # The smallest real TFX run: one component, the project's metadata link.
    LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name=config.name, pipeline_root=config.pipeline_root,
        components=[tfx.components.ImportSchemaGen(
            schema_file=schema_file("movielens"))],
        enable_cache=True,
        metadata_connection_config=metadata.connection_config(config)))

  run_once()
  run_once()
  store = metadata_store.MetadataStore(metadata.connection_config(config))
  states = [e.last_known_state for e in store.get_executions()]
  assert states == [metadata_store_pb2.Execution.COMPLETE,
                    metadata_store_pb2.Execution.CACHED]
  # What `recsys runs` and `report` read: the runs, and each one's outputs.
  store, found = outputs.pipeline_runs(config)
  assert len(found) == 2
  for _, executions in found:
    schema = outputs.run_outputs(store, executions)["ImportSchemaGen"][
        "schema"]
    assert schema.uri.startswith(config.pipeline_root)
    assert os.path.exists(os.path.join(schema.uri, "schema.pbtxt"))
  assert not os.path.exists(config.metadata_path)

