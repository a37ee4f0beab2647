"""Checks for the external tools the launcher needs, with a clear message when absent."""

from __future__ import annotations

import re
import shutil
import subprocess

from tickwire.devstack.errors import MissingToolError

INSTALL_HINT = {
    "java": "install Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless)",
    "mvn": "install Apache Maven (Debian: apt-get install maven)",
    "go": "install Go 1.22 or newer (Debian: apt-get install golang-go, or the official tarball)",
}


def require(tool: str) -> str:
    """The path of tool, or MissingToolError saying how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise MissingToolError(f"'{tool}' was not found on PATH: {INSTALL_HINT[tool]}")
    return path


def require_java(minimum: int = 17) -> str:
    """The java binary, checked to be at least the given major version."""
    java = require("java")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', out.stderr + out.stdout)
    major = int(match.group(1)) if match else 0
    if major < minimum:
        raise MissingToolError(
            f"Java {minimum}+ is required, found {major or 'unknown'}: {INSTALL_HINT['java']}"
        )
    return java
