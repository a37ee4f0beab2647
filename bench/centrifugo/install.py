"""Build Centrifugo from its Go module into ~/.cache/tickwire (never into the repo).

A plain `go install github.com/centrifugal/centrifugo/v6@v6.9.1` gives a binary that
calls itself v0.0.0 and warns it is a development build, because the release version is
stamped at link time. So the install passes the same `-X .../internal/build.Version`
linker flag Centrifugo's own release script uses (and leaves its usage-stats endpoint
empty, so the binary never tries to report anywhere).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tickwire.devstack.paths import cache_dir

MODULE = "github.com/centrifugal/centrifugo/v6"
VERSION = "v6.9.1"


def binary_path() -> Path:
    """Where the built Centrifugo binary is cached."""
    return cache_dir() / f"centrifugo-{VERSION}" / "centrifugo"


def installed_version(binary: Path) -> str:
    """The version line the binary prints (e.g. 'Centrifugo v6.9.1 (Go version: ...)')."""
    out = subprocess.run([binary, "version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def build() -> Path:
    """Build Centrifugo once into the cache; later calls return the cached binary."""
    binary = binary_path()
    if binary.exists() and VERSION in installed_version(binary):
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("'go' was not found on PATH: install Go 1.24 or newer")
    binary.parent.mkdir(parents=True, exist_ok=True)
    print(f"[bench] building Centrifugo {VERSION} into {binary.parent} (first run only)...")
    version_flag = f"-X {MODULE}/internal/build.Version={VERSION.removeprefix('v')}"
    env = {**os.environ, "GOBIN": str(binary.parent), "GOTOOLCHAIN": "local"}
    env.pop("GOFLAGS", None)
    subprocess.run(
        [go, "install", f"-ldflags={version_flag}", f"{MODULE}@{VERSION}"],
        env=env,
        check=True,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )
    if VERSION not in installed_version(binary):
        raise RuntimeError(f"{binary} does not report {VERSION}: {installed_version(binary)}")
    return binary


if __name__ == "__main__":
    print(installed_version(build()))
