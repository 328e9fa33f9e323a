"""Where a run's ML Metadata store lives: SQLite in the output directory, or
a MySQL database that several machines (and their runs) share.

The MySQL settings come from the config's `metadata` section, each one left
empty taken from the environment (RECSYS_MYSQL_HOST, RECSYS_MYSQL_PORT,
RECSYS_MYSQL_DATABASE, RECSYS_MYSQL_USER); the password comes only from
RECSYS_MYSQL_PASSWORD, so that it never lands in run_config.json.
"""
import os
from typing import Mapping, Optional

from ml_metadata.proto import metadata_store_pb2

from pipeline.config import ConfigError, RunConfig, is_uri

ENV_PREFIX = "RECSYS_MYSQL_"
DEFAULT_MYSQL_PORT = 3306


def connection_config(config: RunConfig, read_only: bool = False,
                      environ: Optional[Mapping[str, str]] = None
                      ) -> metadata_store_pb2.ConnectionConfig:
  """The MLMD connection of a run (what the DAG runner and `summarize` use).

  `read_only` opens the SQLite file without creating or migrating it (MySQL
  has no such mode; reading is all the callers do there).
  """
  connection = metadata_store_pb2.ConnectionConfig()
  if config.metadata.backend == "sqlite":
    if is_uri(config.output_dir):
      raise ConfigError(
          f"metadata.backend: sqlite keeps the store in output_dir, which must "
          f"then be a local directory, not {config.output_dir}; use mysql")
    connection.sqlite.filename_uri = config.metadata_path
    connection.sqlite.connection_mode = (
        metadata_store_pb2.SqliteMetadataSourceConfig.READONLY if read_only
        else metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE)
    return connection
  environ = os.environ if environ is None else environ
  settings = config.metadata

  def setting(name: str) -> str:
    return str(getattr(settings, f"mysql_{name}") or
               environ.get(f"{ENV_PREFIX}{name.upper()}", ""))

  for name in ("host", "database", "user"):
    if not setting(name):
      raise ConfigError(
          f"metadata.mysql_{name}: needed with metadata.backend=mysql (set it, "
          f"or the environment variable {ENV_PREFIX}{name.upper()})")
  port = setting("port") or str(DEFAULT_MYSQL_PORT)
  if not port.isdigit():
    raise ConfigError(f"{ENV_PREFIX}PORT: {port!r} is not a port number")
  connection.mysql.host = setting("host")
  connection.mysql.port = int(port)
  connection.mysql.database = setting("database")
  connection.mysql.user = setting("user")
  connection.mysql.password = environ.get(f"{ENV_PREFIX}PASSWORD", "")
  return connection
