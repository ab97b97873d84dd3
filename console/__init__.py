"""The staff console's browser files: our pages (static/) and the pinned vendor libraries (vendor/), served by api.console."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
STATIC_DIR = ROOT / "static"
VENDOR_DIR = ROOT / "vendor"
