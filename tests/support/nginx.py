"""A real nginx (Debian's) in front of replicas, configured by the repository's ``deploy/nginx.conf``.

The shipped file names its upstreams ``runwatch-N:8080`` and listens on 8080 (compose.yaml's layout);
here those lines point at the test's loopback replicas and a free port, and the paths nginx writes go to
a temporary folder. Everything else (the run hash, the retry policy) is the shipped configuration.

``RUNWATCH_REQUIRE_NGINX=1`` (set by ``.ci/run``) turns a missing nginx into an error instead of a skip.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.ports import free_port
from tests.support.waiting import stop_process

SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


class Nginx:
    def __init__(self, binary: str, upstreams: list[str]) -> None:
        """``upstreams``: ``host:port`` of each replica, in order."""
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="runwatch-nginx-"))
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config_path = self.root / "nginx.conf"
        self.config_path.write_text(self._render(upstreams))
        self.process: subprocess.Popen[bytes] | None = None

    def _render(self, upstreams: list[str]) -> str:
        text = SHIPPED_CONFIG.read_text()
        servers = re.findall(r"^(\s*)server \S+:8080([^;]*);", text, flags=re.M)
        assert servers, f"{SHIPPED_CONFIG} has no 'server NAME:8080 ...;' upstream lines"
        indent, options = servers[0]
        text = re.sub(r"^\s*server \S+:8080[^;]*;\n", "", text, flags=re.M)
        lines = "".join(f"{indent}server {upstream}{options};\n" for upstream in upstreams)
        text = re.sub(r"(hash \$run_path consistent;\n)", r"\1" + lines.replace("\\", "\\\\"), text, count=1)
        text = re.sub(r"listen\s+8080\s*;", f"listen 127.0.0.1:{self.port};", text)
        text = re.sub(r"^\s*(pid|error_log|user)\s[^;]*;\n", "", text, flags=re.M)
        head = f"pid {self.root}/nginx.pid;\nerror_log {self.root}/error.log warn;\ndaemon off;\n"
        if os.geteuid() == 0:
            head += "user root root;\n"  # workers write the temp folders below, which root owns
        temp = "".join(f"    {name}_temp_path {self.root}/{name};\n"
                       for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return head + re.sub(r"http\s*\{\n", "http {\n" + temp, text, count=1)

    def start(self, timeout: float = 60.0) -> Nginx:
        log = (self.root / "stderr.log").open("ab")
        self.process = subprocess.Popen([self.binary, "-c", str(self.config_path), "-p", str(self.root)],
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.root / 'stderr.log').read_text()}\n"
                                   f"{self.config_path.read_text()}")
            try:
                httpx.get(f"{self.base_url}/healthz", timeout=1.0)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start listening")

    def stop(self) -> None:
        stop_process(self.process, signal.SIGQUIT)  # nginx's graceful stop
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
