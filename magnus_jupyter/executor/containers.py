"""magnus' ``local-container`` executor: each task in a docker image, which needs a docker engine.

Only the check is here: whether ``docker`` is installed and its engine answers.
Without one a run with this executor is refused in one line (exit 2) before
anything starts.
"""

from __future__ import annotations

import shutil
import subprocess

CHECK_TIMEOUT = 20.0  # seconds for `docker info`: an engine that does not answer by then is not usable


def docker_problem() -> str | None:
    """Why docker cannot run containers here, or None when its engine answers."""
    docker = shutil.which("docker")
    if docker is None:
        return "the docker command is not installed (not on PATH)"
    try:
        done = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                              text=True, timeout=CHECK_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`docker info` did not answer: {exc}"
    if done.returncode != 0 or not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["no server version"])[-1]
        return f"the docker engine does not answer (`docker info`: {last})"
    return None
