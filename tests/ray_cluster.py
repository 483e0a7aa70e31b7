"""A throwaway Ray cluster of separate `ray start` processes on this machine's loopback, for tests.

Each node is its own ``ray start --block`` process in its own session (process group), with its
own CPU count, ports picked free at start and a private temp dir. Stopping kills exactly those
process groups, never other Ray instances on the machine (``ray stop --force`` would).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LocalRayCluster", "RayNode"]

RAY = str(Path(sys.executable).with_name("ray"))


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class RayNode:
    """One ``ray start --block`` process (and everything it spawned, in its process group)."""

    name: str
    proc: subprocess.Popen
    log: Path
    node_manager_port: int

    def kill(self) -> None:
        """SIGKILL the node's whole process group (raylet, object store, its workers)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)


@dataclass
class LocalRayCluster:
    """A head node and worker nodes on 127.0.0.1 (``address`` is what ``--address`` takes)."""

    temp_dir: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="mdray", dir="/tmp"))
    )
    nodes: list[RayNode] = field(default_factory=list)
    address: str = ""
    #: Token authentication as Ray 2.60 enables it by default; a driver connecting by address
    #: needs the same variables (``driver_env``).
    env: dict[str, str] = field(
        default_factory=lambda: {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    )

    def driver_env(self) -> dict[str, str]:
        """Environment for a process that joins this cluster with ``--address``."""
        return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **self.env}

    def _start(self, name: str, args: list[str]) -> RayNode:
        log = self.temp_dir / f"{name}.log"
        (nm, om, agent, agent_grpc, metrics, rtenv) = _free_ports(6)
        cmd = [RAY, "start", "--block", "--disable-usage-stats", "--node-ip-address", "127.0.0.1",
               "--node-manager-port", str(nm), "--object-manager-port", str(om),
               "--dashboard-agent-listen-port", str(agent),
               "--dashboard-agent-grpc-port", str(agent_grpc),
               "--metrics-export-port", str(metrics), "--runtime-env-agent-port", str(rtenv),
               *args]  # fmt: skip
        env = self.driver_env()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        node = RayNode(name, proc, log, nm)
        self.nodes.append(node)
        return node

    def start(self, cpus: list[int], timeout: float = 120) -> LocalRayCluster:
        """Start a head with ``cpus[0]`` CPUs and one worker node per further entry."""
        port, dash = _free_ports(2)
        self.address = f"127.0.0.1:{port}"
        self._start("head", ["--head", "--port", str(port), "--num-cpus", str(cpus[0]),
                             "--include-dashboard", "false", "--dashboard-port", str(dash),
                             "--temp-dir", str(self.temp_dir)])  # fmt: skip
        self.wait_for_nodes(1, timeout)
        for i, n in enumerate(cpus[1:], 1):
            self._start(f"worker{i}", ["--address", self.address, "--num-cpus", str(n)])
        self.wait_for_nodes(len(cpus), timeout)
        return self

    def add_worker(self, cpus: int, timeout: float = 120) -> RayNode:
        """Start one more worker node and wait until the cluster counts it."""
        node = self._start(f"worker{len(self.nodes)}", ["--address", self.address,
                                                        "--num-cpus", str(cpus)])  # fmt: skip
        self.wait_for_nodes(len([n for n in self.nodes if n.proc.poll() is None]), timeout)
        return node

    def _ask(self, expression: str) -> str:
        code = (
            "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', "
            f"log_to_driver=False); print({expression})"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, self.address],
            capture_output=True,
            text=True,
            timeout=60,
            env=self.driver_env(),
        )
        return out.stdout.strip().splitlines()[-1] if out.returncode == 0 else ""

    def alive_nodes(self) -> int:
        """Number of nodes the cluster's GCS counts as alive (asked in a fresh process)."""
        return int(self._ask("sum(n['Alive'] for n in ray.nodes())") or 0)

    def node_id(self, node: RayNode) -> str:
        """Ray's node id of ``node`` (what trials.csv's node_id column holds)."""
        port = node.node_manager_port
        return self._ask(
            f"[n['NodeID'] for n in ray.nodes() if n['Alive'] and n['NodeManagerPort'] == {port}][0]"
        )

    def wait_for_nodes(self, n: int, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            # A node a test killed on purpose (SIGKILL) is not a failure to start.
            dead = [x for x in self.nodes if x.proc.poll() not in (None, -signal.SIGKILL)]
            if dead:
                raise RuntimeError(
                    f"ray start {dead[0].name} exited: {dead[0].log.read_text()[-2000:]}"
                )
            if self.alive_nodes() >= n:
                return
            time.sleep(1)
        raise TimeoutError(f"the Ray cluster did not reach {n} nodes in {timeout} s")

    def stop(self) -> None:
        """Kill every node process group this cluster started, then remove its temp dir."""
        for node in reversed(self.nodes):
            node.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
