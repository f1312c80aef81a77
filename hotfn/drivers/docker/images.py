"""Building function images (used by `hotfn build`; blocking, no trio here)."""

from __future__ import annotations

import io
import os
import tarfile
from typing import Callable

import docker
import docker.errors

from ..base import DriverError, EngineUnavailable

SKIP = {".git", "__pycache__", "node_modules", ".venv"}


def _context(directory: str, dockerfile: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for root, dirs, files in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if d not in SKIP)
            for name in sorted(files):
                full = os.path.join(root, name)
                tar.add(full, arcname=os.path.relpath(full, directory), recursive=False)
        data = dockerfile.encode()
        info = tarfile.TarInfo(".hotfn.Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def build_image(directory: str, tag: str, dockerfile: str,
                progress: Callable[[str], None] | None = None) -> str:
    """docker build ``directory`` with ``dockerfile`` (text); returns the tag."""
    try:
        client = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
        stream = client.build(fileobj=_context(directory, dockerfile), custom_context=True,
                              dockerfile=".hotfn.Dockerfile", tag=tag, rm=True, forcerm=True,
                              decode=True, labels={"hotfn.function": "1"})
        for chunk in stream:
            if "error" in chunk:
                raise DriverError(f"docker build failed: {chunk['error'].strip()}")
            if progress and chunk.get("stream"):
                progress(chunk["stream"])
    except docker.errors.DockerException as exc:
        raise EngineUnavailable(f"docker build: {exc}") from exc
    return tag
