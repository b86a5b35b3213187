"""python -m clip_lora <verb> ...  ==  clip-lora <verb> ..."""

import sys

from clip_lora.cli import main

sys.exit(main())
