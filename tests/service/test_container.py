"""The Dockerfile's install and start steps, performed in a fresh venv and folder layout.

No container engine runs here, so this test reads the Dockerfile and does what each instruction says in a
folder standing for the image's root: COPY copies, RUN runs, ENV/WORKDIR/USER/CMD/HEALTHCHECK start the
service as the image would. The deviations, forced by having no root and no container: the venv sees
this machine's site-packages (pip finds the dependencies there, so only the build backend comes from the
package index); ``useradd``/``chown`` are left out (USER is checked to be unprivileged instead); the
service listens on a free loopback port instead of 0.0.0.0:8080.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
MAPPED = ("/opt/runwatch", "/src", "/data", "/config")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, comments and continuations handled."""
    found = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def exec_form(arguments: str) -> list[str]:
    """A JSON-array argument (CMD ["a", "b"]), or a shell-form one split as the shell would."""
    return list(json.loads(arguments)) if arguments.startswith("[") else shlex.split(arguments)


@pytest.mark.slow
def test_the_dockerfile_installs_and_starts_a_healthy_ready_service(tmp_path: Path) -> None:
    image = tmp_path / "image"

    def here(text: str) -> str:
        for path in MAPPED:
            text = text.replace(path, f"{image}{path}")
        return text

    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "ALERTS_"))}
    workdir = image
    user = "root"
    command: list[str] = []
    healthcheck: list[str] = []
    stages = 0
    for instruction, arguments in instructions():
        if instruction == "FROM":
            stages += 1
            assert arguments.startswith("python:3.11")
        elif instruction == "WORKDIR":
            workdir = Path(here(arguments))
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, target = arguments.split()
            if sources[0].startswith("--from="):  # the same path in both stages: the venv is already there
                assert sources[1:] == [target]
                assert Path(here(target)).is_dir()
                continue
            destination = Path(here(target)) if target.startswith("/") else workdir / target
            for source in sources:
                origin = ROOT / source
                if origin.is_dir():
                    shutil.copytree(origin, destination, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
                else:
                    if target.endswith("/"):
                        destination.mkdir(parents=True, exist_ok=True)
                        shutil.copy(origin, destination / origin.name)
                    else:
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(origin, destination)
        elif instruction == "RUN":
            for step in arguments.split("&&"):
                words = shlex.split(here(step))
                if words[0] in ("useradd", "chown"):  # needs root; USER is checked instead
                    continue
                if words[:3] == ["python", "-m", "venv"]:
                    words[0] = sys.executable
                    words.insert(3, "--system-site-packages")  # the dependencies: this machine's, not PyPI's
                result = subprocess.run(words, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
                assert result.returncode == 0, f"{step}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        elif instruction == "ENV":
            name, _, value = arguments.partition("=")
            env[name] = here(value.replace("$PATH", env.get("PATH", "")))
        elif instruction == "USER":
            user = arguments
        elif instruction == "CMD":
            command = exec_form(arguments)
        elif instruction == "HEALTHCHECK":
            healthcheck = exec_form(arguments.split(" CMD ", 1)[1])
    assert stages == 2 and user not in ("root", "0")
    assert command and healthcheck

    config = Path(env["ALERTS_CONFIG"])
    config.write_text(here(config.read_text()))  # its /data path, as the image's root maps it
    port = free_port()
    env.update(ALERTS_SERVER__HOST="127.0.0.1", ALERTS_SERVER__PORT=str(port))
    log = (tmp_path / "service.log").open("wb")
    service = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        probe = [word.replace(":8080/", f":{port}/") for word in healthcheck]
        deadline = time.monotonic() + 120
        while subprocess.run(probe, env=env, capture_output=True, timeout=30).returncode != 0:
            output = (tmp_path / "service.log").read_text()
            assert service.poll() is None, output
            assert time.monotonic() < deadline, f"the HEALTHCHECK never passed:\n{output}"
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/readyz", timeout=30).json() == {"status": "ok"}
        assert (image / "data" / "alerts.db").exists()  # the /data volume holds the database
        page = httpx.get(f"{base}/", timeout=30, follow_redirects=True)
        assert page.status_code == 200 and "Runwatch" in page.text  # templates and static files were installed
        installed = subprocess.run([env["PATH"].split(":")[0] + "/python", "-c",
                                    "import alerts; print(alerts.__file__)"], env=env, capture_output=True,
                                   text=True, cwd=workdir, timeout=60)
        assert installed.stdout.startswith(str(image / "opt" / "runwatch")), installed  # not this checkout
    finally:
        service.terminate()
        service.wait(timeout=30)
