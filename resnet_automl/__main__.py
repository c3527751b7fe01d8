"""`python -m resnet_automl` runs the command line."""
import sys

from resnet_automl.cli.main import main

sys.exit(main())
