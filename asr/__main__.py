"""`python -m asr ...` (and `torchrun ... -m asr train ...`): the asr command."""

import sys

from asr.cli import main

sys.exit(main())
