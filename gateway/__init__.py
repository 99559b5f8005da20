"""talkgate: a GraphQL gateway for contact-center data."""

from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("talkgate")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"
