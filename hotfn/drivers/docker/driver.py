"""The Docker driver: the only module that imports the docker SDK.

The SDK is loaded when it is first needed (to start a container, look an image up), on a worker
thread: an idle server (pings, clean-up of containers at start) talks to the engine's unix
socket without it (engine.py), ~9 MiB lighter.

Every SDK call blocks (requests over the engine's socket), so each runs on a worker thread
under one CapacityLimiter no larger than the SDK's connection pool. The attach stream is the
exception: once attached, its socket is handed to trio and read and written without threads,
since it carries every hot request and response.

Errors from the SDK are translated here, where they enter: the layers above see only
hotfn.drivers' own exception types.
"""

from __future__ import annotations

import array
import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import termios
import threading
from typing import Any, Callable, Iterator, Mapping, TypeVar

import trio

from ..base import (
    Container,
    ContainerGone,
    ContainerSpec,
    Driver,
    DriverError,
    EngineUnavailable,
    ExitStatus,
    ISOLATIONS,
    ImageNotFound,
    IsolationUnavailable,
    NoShell,
)
from .demux import Demultiplexer, DemuxError
from .engine import EngineSocket, socket_path_from_env

log = logging.getLogger(__name__)
T = TypeVar("T")

# The SDK's default urllib3 pool size; more threads than connections would only queue inside it.
SDK_POOL_SIZE = 10
RECEIVE_SIZE = 256 * 1024
# Exit-status requests made ahead of need (watch_exit) at once; more cold calls than this wait
# for their status the ordinary way, after their output ended.
WAIT_POOL_SIZE = 16

# Direct stdio: the process's stdin and stdout become two FIFOs in a host directory mounted at
# IO_MOUNT, opened by a /bin/sh wrapper before it execs the image's own command. A frame then
# crosses one pipe each way instead of dockerd's and containerd's copying: a hot round trip
# drops from about 0.33 ms to about 0.08 ms here.
IO_MOUNT = "/hotfn/io"
IO_WRAPPER = ["/bin/sh", "-c", f'exec <{IO_MOUNT}/in >{IO_MOUNT}/out && exec "$@"', "hotfn-io"]

# A parked cold container (DockerDriver.park): started ahead of its call, it waits in /bin/sh,
# blocked reading the call's environment from a FIFO, and execs the image's own command only
# once that is complete. The last line of what hotfn writes sets HOTFN_GO: without it (hotfn
# died mid-write, or the FIFO was closed empty) the function never runs.
PARK_WRAPPER = [
    "/bin/sh", "-c",
    f'set -a; . {IO_MOUNT}/env; set +a; [ "${{HOTFN_GO-}}" = 1 ] || exit 125; unset HOTFN_GO; exec "$@"',
    "hotfn-park",
]
# What a parked container's /bin/sh can take as a variable name.
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NO_SHELL = (f"image {{image}} has no {IO_WRAPPER[0]}, which hot containers need for direct stdio "
             "(docs/protocol.md; or run the server with --io-dir '')")

# isolation "gvisor" runs containers with this OCI runtime, registered with dockerd by
# scripts/ensure-sandbox (/etc/docker/daemon.json "runtimes").
GVISOR_RUNTIME = "runsc"

# Function networks: one bridge per app and node, its Linux interface named BRIDGE_PREFIX + a
# hash, so that scripts/ensure-sandbox's iptables rules (matching "hfn+") keep every function
# network away from the host's own addresses and from private networks. ICC off: containers on
# the same bridge cannot reach one another either.
NETWORK_LABEL = "hotfn.network"
BRIDGE_PREFIX = "hfn-"
BRIDGE_OPTIONS = {"com.docker.network.bridge.enable_icc": "false"}


def network_names(labels: Mapping[str, str]) -> tuple[str, str]:
    """(Docker network name, bridge interface name) of the network carrying ``labels``."""
    key = "\0".join(f"{k}={v}" for k, v in sorted(labels.items()))
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    app = labels.get("hotfn.app", "")
    # Linux caps interface names at 15 bytes: "hfn-" and 11 hex digits.
    return f"hotfn-{app[:40]}-{digest[:12]}", f"{BRIDGE_PREFIX}{digest[:11]}"


class _NetworkUse:
    """How many of our live containers are on a network, and since when none are."""

    def __init__(self) -> None:
        self.users = 0
        self.idle_since = 0.0


def _sdk_error(exc: BaseException, kind: str) -> bool:
    """Whether ``exc`` is the SDK's (or its transport's) error ``kind``; never loads the SDK
    (an error of the SDK's comes only once the SDK is loaded)."""
    module, _, name = kind.rpartition(".")
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, getattr(loaded, name))


@contextlib.contextmanager
def engine_errors(what: str) -> Iterator[None]:
    """Translate SDK and transport errors into the driver's own types."""
    try:
        yield
    except DriverError:
        raise
    except Exception as exc:
        if _sdk_error(exc, "docker.errors.ImageNotFound"):
            raise ImageNotFound(str(exc.explanation or exc)) from exc  # type: ignore[attr-defined]
        if _sdk_error(exc, "docker.errors.APIError"):
            raise DriverError(f"{what}: {exc.explanation or exc}") from exc  # type: ignore[attr-defined]
        if (_sdk_error(exc, "requests.exceptions.ConnectionError")
                or _sdk_error(exc, "docker.errors.DockerException")):
            raise EngineUnavailable(f"{what}: the Docker engine is not reachable ({exc})") from exc
        raise


class DockerDriver(Driver):
    def __init__(self, client: Any = None, *, max_threads: int = SDK_POOL_SIZE,
                 io_dir: str | None = None, engine: EngineSocket | None = None,
                 timeout: float = 60.0, allow_pull: bool = False,
                 gvisor_runtime: str = GVISOR_RUNTIME, wait_client: Any = None,
                 early_exit_status: bool = True) -> None:
        """``client``: a docker.APIClient, or None to make one when first needed; ``engine``:
        the engine's unix socket for the calls an idle server makes (None: the SDK's);
        ``io_dir``: where direct-stdio FIFOs live (on the engine's own host); None: off.
        ``allow_pull``: fetch a missing image from its registry; off, only images already on
        the engine run (what an operator built or loaded).
        ``wait_client``: a second client for exit-status requests made ahead of need
        (Container.watch_exit), which block a connection and a thread for a call's length and
        so must not take them from ``client``'s pool; None: made when first needed, if
        ``early_exit_status`` (off: no such requests)."""
        self._client = client
        self._client_lock = threading.Lock()
        self._engine = engine
        self._timeout = timeout
        self.allow_pull = allow_pull
        self._limiter = trio.CapacityLimiter(max_threads)
        self._wait_client_made = wait_client
        self._early_exit_status = early_exit_status or wait_client is not None
        self._wait_limiter = trio.CapacityLimiter(WAIT_POOL_SIZE)
        self.io_dir = io_dir
        self.gvisor_runtime = gvisor_runtime
        self._gvisor_seen = False
        # Networks this driver created or joined, by name; a lock per name orders creating
        # one, the containers joining it and removing it.
        self._networks: dict[str, _NetworkUse] = {}
        self._network_locks: dict[str, trio.Lock] = {}
        # Images known to have IO_WRAPPER's shell (by the id or name a spec gave).
        self._has_shell: set[str] = set()
        if io_dir is not None:
            os.makedirs(io_dir, mode=0o700, exist_ok=True)

    @classmethod
    def from_env(cls, *, timeout: float = 60.0, io_dir: str | None = None,
                 allow_pull: bool = False) -> "DockerDriver":
        """A driver for the engine named by DOCKER_HOST (and friends), else the local socket."""
        path = socket_path_from_env()
        if path is not None:
            return cls(io_dir=io_dir, engine=EngineSocket(path, timeout), timeout=timeout,
                       allow_pull=allow_pull)
        driver = cls(io_dir=io_dir, timeout=timeout, allow_pull=allow_pull)
        driver.client  # tcp, ssh: the SDK from the start (it says now if the engine is not there)
        return driver

    @property
    def client(self) -> Any:
        """The SDK's client, made (and the SDK loaded, ~0.3 s) on first use: call this from a
        worker thread (``_sdk``), not the event loop."""
        with self._client_lock:
            if self._client is None:
                import docker  # the one place; see the module's docstring

                with engine_errors("connecting"):
                    self._client = docker.APIClient(
                        version="auto", timeout=self._timeout, max_pool_size=SDK_POOL_SIZE,
                        **docker.utils.kwargs_from_env(),
                    )
            return self._client

    @property
    def _wait_client(self) -> Any:
        """The second client (see ``__init__``), made on first use like ``client``: call this
        from a worker thread. None when exit statuses are not asked for ahead."""
        if not self._early_exit_status:
            return None
        client = self.client  # first: its lock is not re-entrant
        with self._client_lock:
            if self._wait_client_made is None:
                import docker

                with engine_errors("connecting"):
                    self._wait_client_made = docker.APIClient(
                        version=client.api_version, timeout=self._timeout,
                        max_pool_size=WAIT_POOL_SIZE, **docker.utils.kwargs_from_env(),
                    )
            return self._wait_client_made

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await trio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=self._limiter
        )

    async def _sdk(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """The SDK client's ``method``, called on a worker thread (where the client is made if
        need be)."""
        return await self._call(lambda: getattr(self.client, method)(*args, **kwargs))

    async def ping(self) -> bool:
        try:
            with engine_errors("ping"):
                if self._engine is not None:
                    return (await self._engine.request("GET", "/_ping"))[0] == 200
                return bool(await self._sdk("ping"))
        except DriverError:
            return False

    async def _image_id(self, image: str) -> str | None:
        try:
            with engine_errors(f"inspecting image {image}"):
                return (await self._sdk("inspect_image", image))["Id"]
        except ImageNotFound:
            return None

    async def image_exists(self, image: str) -> bool:
        return await self._image_id(image) is not None

    async def ensure_image(self, image: str) -> str:
        image_id = await self._image_id(image)
        if image_id is not None:
            return image_id
        if not self.allow_pull:
            raise ImageNotFound(image, "this server does not pull images: build or load it on the "
                                "engine, or start the server with --allow-pull")
        repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        try:
            with engine_errors(f"pulling {image}"):
                await self._sdk("pull", repository, tag=tag or "latest")
        except DriverError as exc:
            raise ImageNotFound(image) from exc
        image_id = await self._image_id(image)
        if image_id is None:
            raise ImageNotFound(image)
        return image_id

    async def isolation_available(self, isolation: str) -> bool:
        if isolation == "container":
            return True
        if isolation not in ISOLATIONS:
            return False
        if not self._gvisor_seen:  # once registered it stays so; until then ask every time
            with engine_errors("asking the engine for its runtimes"):
                info = await self._sdk("info")
            self._gvisor_seen = self.gvisor_runtime in (info.get("Runtimes") or {})
        return self._gvisor_seen

    # -- networks --

    def _network_lock(self, name: str) -> trio.Lock:
        return self._network_locks.setdefault(name, trio.Lock())

    async def _join_network(self, labels: Mapping[str, str]) -> str:
        """The name of the network for ``labels``, made if need be, counted as used."""
        name, bridge = network_names(labels)
        async with self._network_lock(name):
            if name not in self._networks:
                with engine_errors(f"creating network {name}"):
                    await self._call(self._create_network, name, bridge, labels)
                self._networks[name] = _NetworkUse()
            self._networks[name].users += 1
        return name

    def _leave_network(self, name: str) -> None:
        use = self._networks.get(name)
        if use is not None and use.users > 0:
            use.users -= 1
            if use.users == 0:
                use.idle_since = trio.current_time()

    def _create_network(self, name: str, bridge: str, labels: Mapping[str, str]) -> None:
        # The names filter matches substrings: look for this exact name.
        if any(n["Name"] == name for n in self.client.networks(names=[name])):
            return  # made by an earlier run of this node, or just now by a caller we raced
        self.client.create_network(
            name, driver="bridge", check_duplicate=True,
            options={**BRIDGE_OPTIONS, "com.docker.network.bridge.name": bridge},
            labels={**labels, NETWORK_LABEL: "1"},
        )

    async def _remove_network(self, name: str) -> bool:
        try:
            with engine_errors(f"removing network {name}"):
                if self._engine is not None:
                    await self._engine.json("DELETE", f"/networks/{name}")
                else:
                    await self._sdk("remove_network", name)
        except DriverError as exc:
            if "not found" not in str(exc):
                log.warning("could not remove network %s: %s", name, exc)
                return False
        self._networks.pop(name, None)
        return True

    async def prune_networks(self, idle_for: float) -> int:
        removed = 0
        for name, use in list(self._networks.items()):
            if use.users or trio.current_time() - use.idle_since < idle_for:
                continue
            async with self._network_lock(name):
                if self._networks.get(name) is use and not use.users:
                    removed += await self._remove_network(name)
        return removed

    async def remove_networks(self, labels: Mapping[str, str]) -> int:
        filters = {"label": [f"{k}={v}" for k, v in {**labels, NETWORK_LABEL: "1"}.items()]}
        with engine_errors("listing networks"):
            if self._engine is not None:  # (at start-up: no SDK for an idle server)
                found = await self._engine.json("GET", "/networks", {"filters": json.dumps(filters)})
            else:
                found = await self._sdk("networks", filters=filters)
        removed = 0
        for item in found:
            async with self._network_lock(item["Name"]):
                removed += await self._remove_network(item["Name"])
        return removed

    # -- containers --

    def _create(self, spec: ContainerSpec, io_path: str | None, network: str | None,
                wrapper: list[str] = IO_WRAPPER, stdin_open: bool | None = None) -> str:
        """``io_path``: a host directory mounted at IO_MOUNT, the image's command run behind
        ``wrapper``; stdin then comes through it, unless ``stdin_open`` says otherwise."""
        extra: dict[str, Any] = {}
        binds = None
        if stdin_open is None:
            stdin_open = io_path is None
        if io_path is not None:
            config = self.client.inspect_image(spec.image)["Config"] or {}
            command = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
            if not command:
                raise DriverError(f"image {spec.image} has neither an entrypoint nor a command")
            extra = {"entrypoint": wrapper, "command": command, "volumes": [IO_MOUNT]}
            binds = {io_path: {"bind": IO_MOUNT, "mode": "rw"}}
        host_config = self.client.create_host_config(
            binds=binds,
            mem_limit=f"{spec.memory_mb}m",
            memswap_limit=f"{spec.memory_mb}m",  # equal to mem_limit: no swap
            cpu_shares=spec.cpu_shares,
            pids_limit=spec.pids_limit,
            read_only=spec.read_only_root,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={spec.tmpfs_mb}m"},
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            network_mode=network or "none",
            # An init process (Docker's tini) as pid 1: it reaps the zombies a function's
            # children leave, and passes signals on.
            init=True,
            runtime=self.gvisor_runtime if spec.isolation == "gvisor" else None,
        )
        created = self.client.create_container(
            spec.image,
            environment=dict(spec.env),
            labels=dict(spec.labels),
            host_config=host_config,
            # With detach=False the SDK also sets StdinOnce: our half-close of the attach
            # socket then closes the process's stdin.
            stdin_open=stdin_open,
            detach=False,
            tty=False,
            network_disabled=network is None,
            user=spec.user,
            **extra,
        )
        return created["Id"]

    def _shell_present(self, container_id: str) -> bool:
        """Whether the created container's image has IO_WRAPPER's shell. Asked before start:
        behind the init (pid 1) a missing shell is only an exit status 127, not the engine's
        refusal to start that says why."""
        try:
            stream, _ = self.client.get_archive(container_id, IO_WRAPPER[0])
        except Exception as exc:
            if _sdk_error(exc, "docker.errors.NotFound"):
                return False
            raise
        for _ in stream:  # a symlink, or a small binary: read it to free the connection
            pass
        return True

    def _attach(self, container_id: str, stdin: bool) -> Any:
        return self.client.attach_socket(
            container_id, params={"stdin": int(stdin), "stdout": 1, "stderr": 1, "stream": 1}
        )

    async def start(self, spec: ContainerSpec) -> "DockerContainer":
        if spec.isolation not in ISOLATIONS:
            raise IsolationUnavailable(f"unknown isolation {spec.isolation!r}")
        fifos = _Fifos.make(self.io_dir) if spec.direct_stdio and self.io_dir else None
        container_id = None
        container = None
        network = None
        try:
            if spec.network:
                network = await self._join_network(spec.network_labels)
            try:
                with engine_errors(f"creating a container of {spec.image}"):
                    container_id = await self._call(self._create, spec, fifos and fifos.path, network)
            except DriverError as exc:
                if spec.isolation == "gvisor" and self.gvisor_runtime in str(exc):
                    self._gvisor_seen = False
                    raise IsolationUnavailable(
                        f"isolation 'gvisor' needs the {self.gvisor_runtime!r} runtime registered "
                        f"with the Docker engine (scripts/ensure-sandbox): {exc}") from exc
                if network is not None and "not found" in str(exc):
                    # Someone removed our network behind our back: forget it; the next start
                    # makes it again.
                    self._networks.pop(network, None)
                raise
            if fifos is not None and spec.image not in self._has_shell:
                with engine_errors(f"inspecting container {container_id[:12]}"):
                    if not await self._call(self._shell_present, container_id):
                        raise DriverError(_NO_SHELL.format(image=spec.image))
                self._has_shell.add(spec.image)
            with engine_errors(f"starting container {container_id[:12]}"):
                # Attach before start: output written before we listen would be lost.
                attached = await self._call(self._attach, container_id, fifos is None)
                # Once returned, the container leaves its network when killed.
                container = DockerContainer(self, container_id, attached, fifos, network)
                try:
                    await self._sdk("start", container_id)
                except Exception as exc:
                    if (fifos is not None and _sdk_error(exc, "docker.errors.APIError")
                            and IO_WRAPPER[0] in str(exc.explanation or exc)):  # type: ignore[attr-defined]
                        raise DriverError(_NO_SHELL.format(image=spec.image)) from exc
                    raise
            return container
        except BaseException:
            if network is not None:
                self._leave_network(network)
            with trio.CancelScope(shield=True):
                if container_id is not None:
                    await self._remove(container_id)
                if container is not None:
                    container._close_socket()  # the attach socket, and the FIFOs with it
                elif fifos is not None:
                    fifos.close()
            raise

    async def park(self, spec: ContainerSpec) -> "ParkedContainer":
        """A cold container created, attached and started ahead of its call, waiting (in
        /bin/sh, before the image's command) for the call's environment: see PARK_WRAPPER.
        NoShell if the image has no /bin/sh; DriverError without an io dir."""
        if self.io_dir is None:
            raise DriverError("parking cold containers needs the server's io dir")
        if spec.isolation not in ISOLATIONS:
            raise IsolationUnavailable(f"unknown isolation {spec.isolation!r}")
        spec = dataclasses.replace(spec, labels={**spec.labels, "hotfn.parked": "1"})
        env_fifo = _EnvFifo.make(self.io_dir)
        container_id = None
        container = None
        network = None
        try:
            if spec.network:
                network = await self._join_network(spec.network_labels)
            with engine_errors(f"creating a parked container of {spec.image}"):
                container_id = await self._call(self._create, spec, env_fifo.path, network,
                                                PARK_WRAPPER, True)
            if spec.image not in self._has_shell:
                with engine_errors(f"inspecting container {container_id[:12]}"):
                    if not await self._call(self._shell_present, container_id):
                        raise NoShell(f"image {spec.image} has no {PARK_WRAPPER[0]}")
                self._has_shell.add(spec.image)
            with engine_errors(f"starting parked container {container_id[:12]}"):
                attached = await self._call(self._attach, container_id, True)
                # Once returned, the container leaves its network when killed.
                container = DockerContainer(self, container_id, attached, None, network)
                await self._call(self.client.start, container_id)
            return ParkedContainer(container, env_fifo)
        except BaseException:
            with trio.CancelScope(shield=True):
                if container is not None:
                    await container.kill()
                else:
                    if network is not None:
                        self._leave_network(network)
                    if container_id is not None:
                        await self._remove(container_id)
                env_fifo.close()
            raise

    async def _remove(self, container_id: str) -> None:
        try:
            with engine_errors(f"removing container {container_id[:12]}"):
                if self._engine is not None:
                    await self._engine.json("DELETE", f"/containers/{container_id}",
                                            {"force": "1", "v": "1"})
                else:
                    await self._sdk("remove_container", container_id, force=True, v=True)
        except DriverError as exc:
            if "No such container" in str(exc) or "is already in progress" in str(exc):
                return
            log.warning("could not remove container %s: %s", container_id[:12], exc)

    async def remove_containers(self, labels: Mapping[str, str]) -> int:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with engine_errors("listing containers"):
            if self._engine is not None:
                found = await self._engine.json("GET", "/containers/json",
                                                {"all": "1", "filters": json.dumps(filters)})
            else:
                found = await self._sdk("containers", all=True, filters=filters, quiet=True)
        async with trio.open_nursery() as nursery:
            for item in found:
                nursery.start_soon(self._remove, item["Id"])
        return len(found)

    async def _exit_status(self, container_id: str, timeout: float, early: bool = False) -> ExitStatus:
        with engine_errors(f"waiting for container {container_id[:12]}"):
            try:
                if early:
                    # Abandoned if cancelled: the request ends with the container anyway.
                    # The client is looked up on the worker thread: it may be made there.
                    result = await trio.to_thread.run_sync(
                        lambda: self._wait_client.wait(container_id, timeout=timeout),
                        limiter=self._wait_limiter, abandon_on_cancel=True)
                else:
                    result = await self._sdk("wait", container_id, timeout=timeout)
            except Exception as exc:
                if _sdk_error(exc, "requests.exceptions.ReadTimeout"):
                    return ExitStatus(None)
                raise
            code = result.get("StatusCode")
            oom = False
            if code == 137:
                state = (await self._sdk("inspect_container", container_id))["State"]
                oom = bool(state.get("OOMKilled"))
            return ExitStatus(code, oom)


def _fifo_dir(io_dir: str, prefix: str, fifos: Mapping[str, int]) -> str:
    """A private directory under ``io_dir`` holding the named FIFOs (name -> mode)."""
    # The node's directory may have been removed under us (a tmp cleaner, an operator):
    # make it again rather than fail every start from now on.
    os.makedirs(io_dir, mode=0o700, exist_ok=True)
    path = tempfile.mkdtemp(prefix=prefix, dir=io_dir)
    os.chmod(path, 0o755)  # the function may run as any user; the parent stays 0700
    for name, mode in fifos.items():
        os.mkfifo(f"{path}/{name}", mode)
        os.chmod(f"{path}/{name}", mode)  # past the umask
    return path


class _Fifos:
    """A container's direct stdin and stdout: two FIFOs in a private directory."""

    def __init__(self, path: str) -> None:
        self.path = path
        # O_RDWR: opening never blocks waiting for the other end, and the container's reads
        # see EOF only when we close stdin ourselves.
        self.stdin = trio.lowlevel.FdStream(os.open(f"{path}/in", os.O_RDWR | os.O_CLOEXEC))
        self.stdout = trio.lowlevel.FdStream(os.open(f"{path}/out", os.O_RDWR | os.O_CLOEXEC))

    @classmethod
    def make(cls, io_dir: str) -> "_Fifos":
        return cls(_fifo_dir(io_dir, "c-", {"in": 0o666, "out": 0o666}))

    def close(self) -> None:
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        shutil.rmtree(self.path, ignore_errors=True)


def render_env(env: Mapping[str, str]) -> bytes:
    """``env`` as the lines a parked container's /bin/sh reads (PARK_WRAPPER), HOTFN_GO last.

    Values are single-quoted, so the shell expands nothing in them. ValueError for what an
    environment (or the shell) cannot hold: a name that is not a portable shell name, a NUL.
    """
    lines = []
    for name, value in env.items():
        if not _SHELL_NAME.match(name) or name == "HOTFN_GO":
            raise ValueError(f"{name!r} cannot be passed to a parked container")
        if "\0" in value:
            raise ValueError(f"the value of {name} holds a NUL")
        lines.append(f"{name}='" + value.replace("'", "'\\''") + "'\n")
    lines.append("HOTFN_GO=1\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


class _EnvFifo:
    """A parked container's environment FIFO, in a private directory mounted at IO_MOUNT."""

    def __init__(self, path: str) -> None:
        self.path = path
        # O_RDWR, as for _Fifos: opening never blocks, and the reader sees EOF only when we close.
        self.stream = trio.lowlevel.FdStream(os.open(f"{path}/env", os.O_RDWR | os.O_CLOEXEC))

    @classmethod
    def make(cls, io_dir: str) -> "_EnvFifo":
        return cls(_fifo_dir(io_dir, "p-", {"env": 0o644}))

    def unread(self) -> int:
        pending = array.array("i", [0])
        fcntl.ioctl(self.stream.fileno(), termios.FIONREAD, pending)
        return pending[0]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
        shutil.rmtree(self.path, ignore_errors=True)


class ParkedContainer:
    """A started cold container that runs its function once given a call's environment."""

    # How long a parked shell may take to read its environment before it counts as dead.
    RELEASE_TIMEOUT = 2.0

    def __init__(self, container: "DockerContainer", env_fifo: _EnvFifo) -> None:
        self.container = container
        self._env_fifo = env_fifo

    @property
    def id(self) -> str:
        return self.container.id

    def alive(self) -> bool:
        return not self.container._output_ended()

    async def release(self, env: Mapping[str, str]) -> "DockerContainer":
        """Hand the call's environment over and let the function start; the container is
        then an ordinary cold one. ValueError if ``env`` cannot be passed (render_env), and
        ContainerGone if the container no longer reads it; either way it is discarded."""
        try:
            data = render_env(env)
            if self.container._output_ended():
                raise ContainerGone(f"parked container {self.id[:12]} has ended")
            with trio.fail_after(self.RELEASE_TIMEOUT):
                await self._env_fifo.stream.send_all(data)
                # Closing before the shell has read everything would lose the rest: the FIFO's
                # buffer goes with its last open end. Read all means the shell is reading.
                while self._env_fifo.unread():
                    if self.container._output_ended():
                        raise ContainerGone(f"parked container {self.id[:12]} has ended")
                    await trio.sleep(0.0005)
        except BaseException as exc:
            with trio.CancelScope(shield=True):
                await self.discard()
            if isinstance(exc, (trio.TooSlowError, trio.BrokenResourceError, OSError)):
                raise ContainerGone(f"parked container {self.id[:12]} did not take its call") from exc
            raise
        self._env_fifo.close()
        return self.container

    async def discard(self) -> None:
        """Kill and remove it unused (its function never started). Idempotent."""
        with trio.CancelScope(shield=True):
            await self.container.kill()
            self._env_fifo.close()


class DockerContainer(Container):
    """A started container and its attach stream (and FIFOs, with direct stdio), read and
    written by trio directly."""

    def __init__(self, driver: DockerDriver, container_id: str, attached: Any,
                 fifos: _Fifos | None = None, network: str | None = None) -> None:
        self.id = container_id
        self._network = network
        self._driver = driver
        self._fifos = fifos
        self.separate_stdout = fifos is not None
        # docker-py returns a read-only SocketIO whose ._sock is the hijacked connection.
        # The SocketIO keeps the HTTP response alive; we keep the SocketIO alive with it.
        self._attached = attached
        raw = attached._sock
        self._stream = trio.SocketStream(trio.socket.from_stdlib_socket(raw))
        self._demux = Demultiplexer()
        self._killed = False
        self._send_lock = trio.Lock()
        self._pending = array.array("i", [0])  # FIONREAD's answer (_unread)
        self._exit_watched: trio.Event | None = None
        self._exit_early: ExitStatus | None = None

    async def send_all(self, data: bytes) -> None:
        try:
            if self._fifos is not None:
                # A frame that fits in the pipe goes in one write with no lock and no yield
                # (trio's FdStream and Lock would each yield to the scheduler first: two
                # passes of its loop per call), here rather than in a coroutine more.
                if self._send_lock.locked():
                    await self._send_to_fifo(data, None)
                elif (sent := self._write_stdin(data)) < len(data):
                    await self._send_to_fifo(data, sent)
                return
            async with self._send_lock:
                await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ContainerGone(f"container {self.id[:12]} no longer takes input") from exc

    async def _send_to_fifo(self, data: bytes, sent: int | None) -> None:
        """The rest of a frame into the stdin FIFO: its first ``sent`` bytes went in already,
        none when another frame's partial write holds the lock (``sent`` None). Frames of
        concurrent calls never interleave: a partial write holds the lock until its frame is
        complete."""
        assert self._fifos is not None
        if sent is None:
            await self._send_lock.acquire()
            sent = self._write_stdin(data)
        else:
            self._send_lock.acquire_nowait()  # (free: nothing was awaited since it was checked)
        try:
            view = memoryview(data)
            while sent < len(data):
                await trio.lowlevel.wait_writable(self._fifos.stdin.fileno())
                sent += self._write_stdin(view[sent:])
        finally:
            self._send_lock.release()

    def _write_stdin(self, data: bytes | memoryview) -> int:
        assert self._fifos is not None
        try:
            return os.write(self._fifos.stdin.fileno(), data)
        except BlockingIOError:
            return 0
        except OSError as exc:  # EBADF once closed (fileno -1), EPIPE
            raise trio.ClosedResourceError(str(exc)) from exc

    async def close_stdin(self) -> None:
        try:
            async with self._send_lock:
                if self._fifos is not None:
                    await self._fifos.stdin.aclose()
                else:
                    await self._stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass

    def unread_stdin(self) -> int | None:
        if self._fifos is None:
            return None  # the attach stream's buffers are dockerd's: nothing to ask
        try:
            return self._unread(self._fifos.stdin.fileno())
        except (OSError, trio.ClosedResourceError):
            return None

    def _unread(self, fd: int) -> int:
        """Bytes waiting in the FIFO ``fd`` (FIONREAD): no read, nothing consumed. OSError
        once it is closed."""
        fcntl.ioctl(fd, termios.FIONREAD, self._pending)
        return self._pending[0]

    def close_stdout(self) -> None:
        if self._fifos is not None:
            with contextlib.suppress(OSError):
                self._fifos.stdout.close()  # (trio wakes a task waiting on it: notify_closing)

    def receive_stdout_nowait(self) -> bytes | None:
        assert self._fifos is not None
        fd = self._fifos.stdout.fileno()
        try:
            # Asked first: nothing there (the rule between calls) costs no read and no
            # BlockingIOError raised and caught.
            if not self._unread(fd):
                return None
            return os.read(fd, RECEIVE_SIZE) or None
        except (BlockingIOError, OSError, trio.ClosedResourceError):
            return None

    async def receive_stdout(self) -> bytes | None:
        # Waits first, reads after: an answer is never there the moment its request went out,
        # so trying a read first (as FdStream does, after a yield) is one failed syscall more.
        assert self._fifos is not None
        stdout = self._fifos.stdout
        while True:
            fd = stdout.fileno()
            if fd < 0:
                return None  # closed
            try:
                await trio.lowlevel.wait_readable(fd)
                return os.read(fd, RECEIVE_SIZE) or None
            except BlockingIOError:
                continue
            except (OSError, trio.ClosedResourceError, trio.BrokenResourceError):
                return None

    async def receive_some(self) -> tuple[bytes, bytes] | None:
        try:
            data = await self._stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return None
        if not data:
            return None
        try:
            return self._demux.feed(data)
        except DemuxError as exc:
            raise ContainerGone(f"container {self.id[:12]}: {exc}") from exc

    async def watch_exit(self, timeout: float) -> None:
        """The engine answers a wait request when the process ends: asked ahead, its answer
        is there as stdout reaches EOF instead of one round trip (~6 ms) later."""
        driver = self._driver
        if not driver._early_exit_status or self._exit_watched is not None:
            return
        if driver._wait_limiter.available_tokens < 1:
            return  # all busy: exit_status() asks after EOF rather than queue behind long calls
        self._exit_watched = watched = trio.Event()
        try:
            self._exit_early = await driver._exit_status(self.id, timeout, early=True)
        except DriverError:
            pass  # exit_status() asks again
        finally:
            watched.set()

    async def exit_status(self, timeout: float = 10.0) -> ExitStatus:
        if self._exit_watched is not None:
            with trio.move_on_after(timeout):
                await self._exit_watched.wait()
            early = self._exit_early
            if early is not None and early.code is not None:
                return early
        return await self._driver._exit_status(self.id, timeout)

    def _output_ended(self) -> bool:
        """Whether the attach stream is at EOF (the container has ended), without reading."""
        try:
            return self._attached._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    async def kill(self) -> None:
        with trio.CancelScope(shield=True):
            if not self._killed:
                self._killed = True
                await self._driver._remove(self.id)
                if self._network is not None:
                    self._driver._leave_network(self._network)
            self._close_socket()

    def _close_socket(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.socket.close()
        with contextlib.suppress(OSError):
            self._attached.close()
        if self._fifos is not None:
            self._fifos.close()

    def __repr__(self) -> str:
        return f"<DockerContainer {self.id[:12]}>"
