"""Start-up handshake of the local stack's children: import first, then wait for the emulator.

A worker or the site spends a second or more importing its libraries (Pillow, boto3, Powertools)
before it needs the emulator. `image-etl up` starts them together with the emulator and writes one
line to their stdin once the emulator is ready and the stack file names its endpoints, so the
imports overlap the emulator's own start instead of following it.
"""

from __future__ import annotations

import os
import sys

#: Set by `image-etl up` for children it will tell when to go on.
WAIT_FOR_GO = "IMAGE_ETL_WAIT_FOR_GO"
GO = "go\n"


def wait_for_go() -> None:
    """Block until the stack says the emulator is ready (no-op when run on its own); exit if it died."""
    if os.environ.get(WAIT_FOR_GO) != "1":
        return
    if sys.stdin.readline() != GO:
        raise SystemExit("image-etl up stopped before the AWS emulation was ready")
