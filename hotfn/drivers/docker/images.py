"""Building function images (used by `hotfn build`; blocking, no trio here).

The build context is the function directory filtered by its `.dockerignore`, with docker's own
pattern matcher (docker.utils.build), so what goes in is what `docker build DIR` would send:
`node_modules` and vendored packages included. Without a `.dockerignore` only `.git` and
`__pycache__` stay out.
"""

from __future__ import annotations

import collections
import io
import os
from typing import Callable

import docker
import docker.errors
import docker.utils.build

from ..base import DriverError, EngineUnavailable

DEFAULT_EXCLUDES = [".git", "**/__pycache__"]
DOCKERFILE_NAME = ".hotfn.Dockerfile"
# Lines of build output kept to explain a failure (a compiler's errors are at the end).
TAIL_LINES = 40


class BuildFailed(DriverError):
    """The build ran and failed; ``tail`` is the end of its output (compiler errors included)."""

    def __init__(self, reason: str, tail: list[str]) -> None:
        super().__init__(f"docker build failed: {reason}")
        self.reason = reason
        self.tail = tail

    def __str__(self) -> str:
        shown = "\n".join("  | " + line for line in self.tail)
        return f"docker build failed: {self.reason}" + (f"\nlast build output:\n{shown}" if shown else "")


def dockerignore_patterns(directory: str) -> list[str]:
    """The patterns of ``directory``'s .dockerignore, read the way the docker client does."""
    path = os.path.join(directory, ".dockerignore")
    if not os.path.exists(path):
        return list(DEFAULT_EXCLUDES)
    with open(path) as f:
        lines = [line.strip() for line in f.read().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def context_files(directory: str) -> list[str]:
    """The paths (relative) that the build context of ``directory`` holds."""
    return sorted(docker.utils.build.exclude_paths(
        os.path.abspath(directory), dockerignore_patterns(directory), dockerfile=DOCKERFILE_NAME))


def _context(directory: str, dockerfile: str) -> io.BufferedIOBase:
    return docker.utils.build.tar(directory, exclude=dockerignore_patterns(directory),
                                  dockerfile=(DOCKERFILE_NAME, dockerfile))


def build_image(directory: str, tag: str, dockerfile: str,
                progress: Callable[[str], None] | None = None) -> str:
    """docker build ``directory`` with ``dockerfile`` (text); returns the tag. ``progress``
    gets the build's output as it comes. A failure raises BuildFailed with the output's tail
    and removes the images the failed build had made (no dangling images)."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    partial = ""  # the stream splits lines anywhere
    try:
        client = docker.APIClient(version="auto", **docker.utils.kwargs_from_env())
        before = set(client.images(all=True, quiet=True))
        context = _context(directory, dockerfile)
        try:
            stream = client.build(fileobj=context, custom_context=True, dockerfile=DOCKERFILE_NAME,
                                  tag=tag, rm=True, forcerm=True, decode=True,
                                  labels={"hotfn.function": "1"})
            for chunk in stream:
                text = chunk.get("stream") or ""
                if text:
                    lines = (partial + text).split("\n")
                    partial = lines.pop()
                    tail.extend(line.rstrip() for line in lines if line.strip())
                    if progress:
                        progress(text)
                if "error" in chunk:
                    if partial.strip():
                        tail.append(partial.rstrip())
                    _remove_new_images(client, before)
                    raise BuildFailed(chunk["error"].strip(), list(tail))
        finally:
            context.close()
    except docker.errors.DockerException as exc:
        raise EngineUnavailable(f"docker build: {exc}") from exc
    return tag


def _remove_new_images(client: docker.APIClient, before: set[str]) -> None:
    """Remove the untagged images that appeared during a failed build (its committed steps),
    newest first. The engine refuses to remove an image that anything uses (a child image, a
    container: another build's step in progress), so only leftovers go."""
    fresh = [i for i in client.images(all=True) if i["Id"] not in before
             and not [t for t in (i.get("RepoTags") or []) if t != "<none>:<none>"]]
    for image in sorted(fresh, key=lambda i: i.get("Created", 0), reverse=True):
        try:
            client.remove_image(image["Id"], noprune=False)
        except docker.errors.DockerException:
            pass


def _client() -> docker.APIClient:
    return docker.APIClient(version="auto", **docker.utils.kwargs_from_env())


def tag_image(source: str, target: str) -> None:
    """Give ``source``'s image the name ``target`` (repository[:tag])."""
    repository, _, tag = target.rpartition(":") if ":" in target.split("/")[-1] else (target, "", "")
    try:
        _client().tag(source, repository, tag or "latest", force=True)
    except docker.errors.DockerException as exc:
        raise DriverError(f"docker tag {source} {target}: {exc}") from exc


def remove_image_name(name: str) -> None:
    """Drop the name ``name``; the image goes with it when nothing else names or uses it."""
    try:
        _client().remove_image(name, noprune=False)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.DockerException as exc:
        raise DriverError(f"docker rmi {name}: {exc}") from exc
