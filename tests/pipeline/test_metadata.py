"""The MLMD connection of a run: SQLite by default, MySQL from config or
environment, the password never recorded."""
import json

from ml_metadata.proto import metadata_store_pb2
import pytest

from pipeline import metadata
from pipeline.config import ConfigError, load_config


def test_sqlite_in_the_output_directory(tmp_path):
  config = load_config(values={"output_dir": str(tmp_path)})
  connection = metadata.connection_config(config)
  assert connection.WhichOneof("config") == "sqlite"
  assert connection.sqlite.filename_uri == str(tmp_path / "metadata.sqlite")
  read_only = metadata.connection_config(config, read_only=True)
  assert read_only.sqlite.connection_mode == (
      metadata_store_pb2.SqliteMetadataSourceConfig.READONLY)


def test_mysql_settings_from_config_then_environment(tmp_path):
  config = load_config(values={"output_dir": str(tmp_path)}, overrides=[
      "metadata.backend=mysql", "metadata.mysql_host=db.internal",
      "metadata.mysql_database=recsys_mlmd"])
  environ = {"RECSYS_MYSQL_HOST": "ignored.example", "RECSYS_MYSQL_USER": "ml",
             "RECSYS_MYSQL_PORT": "3307", "RECSYS_MYSQL_PASSWORD": "s3cret"}
  connection = metadata.connection_config(config, environ=environ)
  assert connection.WhichOneof("config") == "mysql"
  mysql = connection.mysql
  # The config wins where it is set; the environment fills the rest.
  assert (mysql.host, mysql.port, mysql.database, mysql.user, mysql.password) == (
      "db.internal", 3307, "recsys_mlmd", "ml", "s3cret")
  assert "s3cret" not in config.to_json()
  assert json.loads(config.to_json())["metadata"]["backend"] == "mysql"
  default_port = metadata.connection_config(
      config, environ={"RECSYS_MYSQL_USER": "ml"})
  assert default_port.mysql.port == 3306 and not default_port.mysql.password


def test_mysql_without_a_host_is_a_clear_error(tmp_path):
  config = load_config(values={"output_dir": str(tmp_path)},
                       overrides=["metadata.backend=mysql"])
  with pytest.raises(ConfigError, match="metadata.mysql_host: needed with "
                     "metadata.backend=mysql .*RECSYS_MYSQL_HOST"):
    metadata.connection_config(config, environ={})
  with pytest.raises(ConfigError, match="RECSYS_MYSQL_PORT: 'abc'"):
    metadata.connection_config(config, environ={
        "RECSYS_MYSQL_HOST": "h", "RECSYS_MYSQL_DATABASE": "d",
        "RECSYS_MYSQL_USER": "u", "RECSYS_MYSQL_PORT": "abc"})


def test_sqlite_needs_a_local_output_directory():
  config = load_config(values={"output_dir": "gs://bucket/recsys"})
  with pytest.raises(ConfigError, match="sqlite keeps the store in output_dir"
                     ".*not gs://bucket/recsys; use mysql"):
    metadata.connection_config(config)
