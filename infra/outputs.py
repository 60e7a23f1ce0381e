"""Stack output keys and stack names: they live in `image_etl.stack_outputs`, which the settings
loader also reads (``IMAGE_ETL_STACK``); the CDK app uses them from here."""

from __future__ import annotations

from image_etl.stack_outputs import *  # noqa: F403
from image_etl.stack_outputs import main

if __name__ == "__main__":
    main()
