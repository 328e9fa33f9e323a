"""`python -m pipeline.cli`: the `recsys` command."""
import sys

from pipeline.cli.main import main

sys.exit(main())
