"""The `recsys` command: one module per group of subcommands (main.py puts
them together). TensorFlow and TFX load lazily, inside the subcommands, so
that `--help` answers at once."""
