"""Re-fetches the console's pinned browser libraries from the npm registry and records their checksums.

Run from the repository root: `python console/vendor/fetch.py` (or `make vendor`). It needs only Python and
the registry (no Node): for each package below it downloads the tarball of the pinned version, checks it
against the registry's sha512 `integrity`, copies the listed files into `console/vendor/<package>/` and
writes `console/vendor/manifest.json` (version, tarball, integrity, and the sha256 of every copied file).
`python console/vendor/fetch.py --check` only verifies the committed files against the manifest.
To upgrade, change a version here, run the script, try the console (`make test`) and commit the result.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"

# package -> (pinned version, files inside the tarball's package/ directory that the pages load)
PACKAGES: dict[str, tuple[str, list[str]]] = {
    # The runtime-only build: templates are written as render functions, so the page needs no
    # 'unsafe-eval' in its Content-Security-Policy (the full build compiles templates with new Function).
    "vue": ("3.5.46", ["dist/vue.runtime.esm-browser.prod.js", "LICENSE"]),
    "element-plus": (
        "2.14.8",
        ["dist/index.full.min.mjs", "dist/index.css", "dist/locale/zh-cn.min.mjs", "LICENSE"],
    ),
    "echarts": ("6.1.0", ["dist/echarts.esm.min.js", "LICENSE"]),
    "swagger-ui-dist": ("5.35.0", ["swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"]),
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - fixed https registry
        return response.read()


def fetch() -> None:
    manifest: dict[str, dict] = {}
    for name, (version, files) in PACKAGES.items():
        meta = json.loads(_get(f"{REGISTRY}/{name}/{version}"))
        tarball_url, integrity = meta["dist"]["tarball"], meta["dist"]["integrity"]
        tarball = _get(tarball_url)
        algorithm, _, expected = integrity.partition("-")
        actual = base64.b64encode(hashlib.new(algorithm, tarball).digest()).decode()
        if actual != expected:
            sys.exit(f"{name}@{version}: tarball does not match the registry's integrity {integrity}")
        copied: dict[str, str] = {}
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            for inner in files:
                member = archive.extractfile(f"package/{inner}")
                if member is None:
                    sys.exit(f"{name}@{version}: {inner} is not in the package")
                data = member.read()
                target = HERE / name / inner
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                copied[inner] = _sha256(data)
        manifest[name] = {"version": version, "tarball": tarball_url, "integrity": integrity, "files": copied}
        print(f"{name}@{version}: {len(copied)} files")
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def check() -> int:
    manifest = json.loads(MANIFEST.read_text())
    bad = 0
    for name, entry in manifest.items():
        for inner, digest in entry["files"].items():
            path = HERE / name / inner
            if not path.is_file() or _sha256(path.read_bytes()) != digest:
                print(f"{name}/{inner}: missing or changed (expected sha256 {digest})")
                bad += 1
    print("vendor files match the manifest" if not bad else f"{bad} vendor files differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(check() if "--check" in sys.argv else fetch())
