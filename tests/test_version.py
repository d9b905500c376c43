"""One version: the package's, which the metadata, `--version`, the User-Agent, the image
label and the changelog's latest release all carry."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import newsloom
from newsloom.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_version_is_written_once_and_agrees_everywhere():
    version = newsloom.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert importlib.metadata.version("newsloom") == version
    cli = subprocess.run(
        [sys.executable, "-m", "newsloom", "--version"], capture_output=True, text=True, timeout=60
    )
    assert cli.returncode == 0 and cli.stdout == f"newsloom {version}\n"
    assert Settings.model_fields["user_agent"].default.startswith(f"newsloom/{version} ")
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG NEWSLOOM_VERSION=(\S+)$", dockerfile, re.M)[1] == version
    releases = re.findall(r"^## \[(\d[^\]]*)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert releases[0] == version


def test_an_empty_user_agent_means_the_default():
    default = Settings.model_fields["user_agent"].default
    assert Settings(user_agent="").user_agent == default
    assert Settings(user_agent="me/1 (+mailto:me@example.org)").user_agent.startswith("me/1")
