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

import contextlib
import dataclasses
import functools
import json
import logging
import os
import threading
from typing import Any, Callable, Iterator, Mapping, TypeVar

import trio

from ..base import (ISOLATIONS, ContainerSpec, Driver, DriverError, ExitStatus, ImageNotFound,
                    IsolationUnavailable, NoShell)
from .container import IO_MOUNT, IO_WRAPPER, _NO_SHELL, DockerContainer, _Fifos
from .engine import EngineSocket, socket_path_from_env
from .errors import _sdk_error, engine_errors
from .networks import BRIDGE_OPTIONS, NETWORK_LABEL, HostSubnetGuard, _NetworkUse, network_names
from .parked import PARK_WRAPPER, ParkedContainer, _EnvFifo
from .seccomp import GVISOR_SECCOMP

log = logging.getLogger(__name__)
T = TypeVar("T")

# The SDK's default urllib3 pool size; more threads than connections would only queue inside it.
SDK_POOL_SIZE = 10
# Exit-status requests made ahead of need (watch_exit) at once; more cold calls than this wait
# for their status the ordinary way, after their output ended.
WAIT_POOL_SIZE = 16



# What the engine keeps of a container's output: nothing. hotfn reads stdout and stderr itself
# (the attach stream, the FIFOs) and keeps at most LOG_CAP (hotfn.pool.worker) of a call's
# stderr; a log driver's copy (json-file by default) grew with everything a function wrote,
# 210 MB for one call, until the container was removed.
LOG_CONFIG = {"type": "none"}

# isolation "gvisor" runs containers with this OCI runtime, registered with dockerd by
# scripts/ensure-sandbox (/etc/docker/daemon.json "runtimes").
GVISOR_RUNTIME = "runsc"
# Without this flag runsc ignores the seccomp profile Docker puts in a container's spec: a
# function could then unshare() a user namespace and open raw sockets in it. (The profile is
# hotfn's own, GVISOR_SECCOMP: runsc cannot apply Docker's as Docker means it.)
GVISOR_SECCOMP_FLAG = "--oci-seccomp"
# /dev/shm: Docker's default is a 64 MiB tmpfs, memory outside the container's own /tmp cap;
# 1 MiB still holds what POSIX semaphores and small shared segments (multiprocessing) need.
SHM_SIZE = "1m"



@contextlib.contextmanager
def _io_dir_errors(io_dir: str | None) -> Iterator[None]:
    """A FIFO that cannot be made (a full disk, a directory gone read-only) as a DriverError: the
    call that wanted the container gets a 502, and no task's nursery sees an OSError."""
    try:
        yield
    except OSError as exc:
        raise DriverError(f"cannot make a container's FIFOs in {io_dir}: {exc}") from exc


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
        # The host's own subnets, kept from function networks: only where the engine is on this
        # host (its unix socket), as its bridges are.
        self._host_subnets = HostSubnetGuard() if engine is not None else None
        # Images known to have IO_WRAPPER's shell (by the id or name a spec gave).
        self._has_shell: set[str] = set()
        # Containers this driver created and has not yet removed (or tried to): everything of a
        # node's on the engine that is not here is a stray (remove_strays). Creates in flight,
        # whose ids are not known yet, are waited for before anything is called a stray.
        self._live: set[str] = set()
        self._creating: set[trio.Event] = set()
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
            runtime = (info.get("Runtimes") or {}).get(self.gvisor_runtime)
            self._gvisor_seen = runtime is not None
            if runtime is not None and GVISOR_SECCOMP_FLAG not in (runtime.get("runtimeArgs") or []):
                log.warning("the %s runtime is registered without %s: gVisor functions run "
                            "without Docker's seccomp profile (run scripts/ensure-sandbox)",
                            self.gvisor_runtime, GVISOR_SECCOMP_FLAG)
        return self._gvisor_seen

    # -- networks --

    def _network_lock(self, name: str) -> trio.Lock:
        return self._network_locks.setdefault(name, trio.Lock())

    async def _join_network(self, labels: Mapping[str, str]) -> str:
        """The name of the network for ``labels``, made if need be, counted as used."""
        name, bridge = network_names(labels)
        async with self._network_lock(name):
            if name not in self._networks:
                await self.guard_host_subnets()
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

    async def guard_host_subnets(self) -> None:
        """Drop function networks' traffic to the host's connected subnets, as they are now."""
        if self._host_subnets is not None:
            await trio.to_thread.run_sync(self._host_subnets.sync)

    async def prune_networks(self, idle_for: float) -> int:
        if self._networks:  # (run every few seconds: a change of the host's subnets is seen)
            await self.guard_host_subnets()
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
            nano_cpus=round(spec.cpus * 1e9) if spec.cpus else None,  # a CFS quota per 100 ms
            pids_limit=spec.pids_limit,
            read_only=spec.read_only_root,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={spec.tmpfs_mb}m"},
            shm_size=SHM_SIZE,
            security_opt=["no-new-privileges",
                          *([GVISOR_SECCOMP] if spec.isolation == "gvisor" else [])],
            cap_drop=["ALL"],
            network_mode=network or "none",
            # An init process (Docker's tini) as pid 1: it reaps the zombies a function's
            # children leave, and passes signals on.
            init=True,
            log_config=LOG_CONFIG,
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

    async def _create_owned(self, *args: Any) -> str:
        """``_create`` on a worker thread; the container is ours (``_live``) once it returns."""
        created = trio.Event()
        self._creating.add(created)
        try:
            container_id = await self._call(self._create, *args)
            self._live.add(container_id)
            return container_id
        finally:
            self._creating.discard(created)
            created.set()

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
        with _io_dir_errors(self.io_dir):
            fifos = _Fifos.make(self.io_dir) if spec.direct_stdio and self.io_dir else None
        container_id = None
        container = None
        network = None
        try:
            if spec.network:
                network = await self._join_network(spec.network_labels)
            try:
                with engine_errors(f"creating a container of {spec.image}"):
                    container_id = await self._create_owned(spec, fifos and fifos.path, network)
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
        with _io_dir_errors(self.io_dir):
            env_fifo = _EnvFifo.make(self.io_dir)
        container_id = None
        container = None
        network = None
        try:
            if spec.network:
                network = await self._join_network(spec.network_labels)
            with engine_errors(f"creating a parked container of {spec.image}"):
                container_id = await self._create_owned(spec, env_fifo.path, network,
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
        # No longer ours from here on, removed or not: one the engine could not remove now is a
        # stray, which remove_strays takes away once the engine answers again.
        self._live.discard(container_id)
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

    async def _container_ids(self, labels: Mapping[str, str]) -> list[str]:
        """Every container (running or not) carrying all of ``labels``."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        with engine_errors("listing containers"):
            if self._engine is not None:
                found = await self._engine.json("GET", "/containers/json",
                                                {"all": "1", "filters": json.dumps(filters)})
            else:
                found = await self._sdk("containers", all=True, filters=filters, quiet=True)
        if not isinstance(found, list):
            raise DriverError(f"listing containers: the engine answered {type(found).__name__}, not a list")
        return [str(item["Id"]) for item in found if isinstance(item, dict) and item.get("Id")]

    async def _remove_all(self, container_ids: list[str]) -> None:
        async with trio.open_nursery() as nursery:
            for container_id in container_ids:
                nursery.start_soon(self._remove, container_id)

    async def remove_containers(self, labels: Mapping[str, str]) -> int:
        found = await self._container_ids(labels)
        await self._remove_all(found)
        return len(found)

    async def remove_strays(self, labels: Mapping[str, str]) -> int:
        found = await self._container_ids(labels)
        # A create in flight may have made one of these without our knowing its id yet: its
        # answer says whether it is ours.
        for created in list(self._creating):
            with trio.move_on_after(self._timeout):
                await created.wait()
        strays = [container_id for container_id in found if container_id not in self._live]
        await self._remove_all(strays)
        return len(strays)

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

