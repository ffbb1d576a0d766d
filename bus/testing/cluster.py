"""A RabbitMQ cluster of private nodes on loopback, for tests that stop a node for real.

A Python handle on ``scripts/rabbitmq-cluster.sh``, which does the work (starting, joining,
stopping and waiting): this module only calls it, so a test and an operator at a shell drive the
cluster the same way::

    with RabbitNodes(3, base_port=5711) as nodes:
        settings = Settings(amqp_url=nodes.url)    # one URL per node, comma-separated
        ...
        nodes.stop_node(0)                         # the first node's Erlang VM stops
        ...
        nodes.start_node(0)                        # back with its data, in the cluster again
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["CLUSTER_SCRIPT", "ClusterError", "RabbitNodes", "rabbitmq_available"]

#: The script that runs the nodes (in the repository, beside the package).
CLUSTER_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rabbitmq-cluster.sh"
#: Longest a script call may take: it bounds each of its own waits (a node's boot: 120 s).
_CALL_TIMEOUT = 600.0


class ClusterError(RuntimeError):
    """The cluster script failed; the message carries what it said (and where its logs are)."""


def rabbitmq_available() -> bool:
    """Whether this machine can run private RabbitMQ nodes: the server and the script exist."""
    installed = Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() or bool(
        shutil.which("rabbitmq-server")
    )
    return installed and CLUSTER_SCRIPT.exists() and bool(shutil.which("bash"))


class RabbitNodes:
    """Private RabbitMQ nodes on loopback, clustered, driven by scripts/rabbitmq-cluster.sh.

    Node ``i`` (0-based) serves AMQP on ``127.0.0.1:base_port + i``. Without a ``workdir`` the
    nodes' data lives in a temporary directory that :meth:`stop` removes.
    """

    def __init__(
        self, count: int = 3, *, base_port: int = 5701, workdir: Path | None = None
    ) -> None:
        if count < 1:
            raise ValueError("a cluster needs at least one node")
        self.count = count
        self.base_port = base_port
        self._temporary = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="lienthong-rabbit-"))

    # --- the nodes ----------------------------------------------------------------------------
    @property
    def ports(self) -> list[int]:
        """Each node's AMQP port."""
        return [self.base_port + index for index in range(self.count)]

    @property
    def urls(self) -> list[str]:
        """Each node's AMQP URL."""
        return [f"amqp://guest:guest@127.0.0.1:{port}/" for port in self.ports]

    @property
    def url(self) -> str:
        """Every node's URL, comma-separated: the ``BUS_AMQP_URL`` of a bus on this cluster."""
        return ",".join(self.urls)

    def node_name(self, index: int) -> str:
        """The Erlang node name of node ``index``, as rabbitmqctl and queue leaders name it."""
        self._checked(index)
        return f"lienthong-{self.ports[index]}@localhost"

    # --- what a test does ---------------------------------------------------------------------
    def start(self) -> None:
        """Start every node, join them into one cluster; returns when all serve AMQP."""
        self._run("start", str(self.count))

    def stop_node(self, index: int) -> None:
        """Stop node ``index``'s RabbitMQ and its Erlang VM; returns when its port is closed."""
        self._run("stop-node", str(self._checked(index)))

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index``'s Erlang VM (a crash: no goodbye to clients or peers)."""
        self._run("kill-node", str(self._checked(index)))

    def start_node(self, index: int) -> None:
        """Start node ``index`` again with its data; returns when it serves AMQP and is back in
        the cluster."""
        self._run("start-node", str(self._checked(index)))

    def start_stopped_nodes(self) -> None:
        """Start again every node whose AMQP port does not answer (one a failed test left
        stopped), so the next test finds the whole cluster."""
        for index, port in enumerate(self.ports):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            except OSError:
                self.start_node(index)

    def stop(self) -> None:
        """Stop every node; a temporary working directory is removed with their data."""
        try:
            self._run("stop")
        finally:
            if self._temporary:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def ctl(self, index: int, *args: str) -> str:
        """What ``rabbitmqctl ARGS`` answers on node ``index``."""
        return self._run("ctl", str(self._checked(index)), *args)

    def queues(self, index: int = 0) -> list[dict[str, Any]]:
        """Every queue as node ``index`` lists it: name, type, members, online members, leader."""
        answer = self.ctl(
            index,
            "list_queues",
            "name",
            "type",
            "members",
            "online",
            "leader",
            "--formatter",
            "json",
            "--quiet",
        )
        listed: list[dict[str, Any]] = json.loads(answer or "[]")
        return listed

    def __enter__(self) -> RabbitNodes:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the script ---------------------------------------------------------------------------
    def _checked(self, index: int) -> int:
        """The script's 1-based number of node ``index``."""
        if not 0 <= index < self.count:
            raise IndexError(f"node {index} of a {self.count}-node cluster (0-based)")
        return index + 1

    def _run(self, *args: str) -> str:
        env = {
            **os.environ,
            "BUS_CLUSTER_BASE_PORT": str(self.base_port),
            "BUS_CLUSTER_DIR": str(self.workdir),
        }
        try:
            done = subprocess.run(
                ["bash", str(CLUSTER_SCRIPT), *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=_CALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(
                f"rabbitmq-cluster.sh {' '.join(args)} still running after {_CALL_TIMEOUT:.0f}s; "
                f"see the node logs in {self.workdir}"
            ) from exc
        if done.returncode != 0:
            raise ClusterError(
                f"rabbitmq-cluster.sh {' '.join(args)} failed ({done.returncode}): "
                f"{done.stderr.strip()[-2000:]}"
            )
        return done.stdout
