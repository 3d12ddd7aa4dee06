"""Runs sent to a Ray cluster through Ray's job submission API: submit, status, stop.

The cluster runs `python -m engine train CONFIG output_dir=RUN_DIR` with USE_RAY=1 as a Ray job; that engine process
is the run's driver and writes the run folder, which must be on storage the studio and the cluster both see under
the same path. The studio then follows the run from its folder as it follows a local one (status.json,
trainer_log.jsonl, running_log.txt). Which job belongs to a run is kept in the run folder (ray_job.json), so a
restarted studio can still ask for its status or stop it.

`ray` is imported only here and only when a job is sent, asked about or stopped: the studio stays torch-free.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import StudioError

JOB_FILE = "ray_job.json"
DASHBOARD_PORT = 8265
# Ray stops a job with SIGTERM, then SIGKILL after this many seconds (its default, 3, is too short for the workers
# to agree on a step and save a checkpoint).
STOP_WAIT_S = 60
# Where the studio keeps its files and whether it may go online; never tokens or passwords (a cluster is shared).
PASSED_ENV = ("STUDIO_HOME", "STUDIO_TOKENIZED_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
              "TRANSFORMERS_OFFLINE")


def dashboard_url(address: str) -> str:
    """`head`, `head:8265` or `http://head:8265` → the URL of the cluster's dashboard (job submission API)."""
    address = address.strip().rstrip("/")
    if "://" not in address:
        address = f"http://{address}"
    scheme, rest = address.split("://", 1)
    if ":" not in rest.split("/", 1)[0]:
        host, _, path = rest.partition("/")
        rest = f"{host}:{DASHBOARD_PORT}" + (f"/{path}" if path else "")
    return f"{scheme}://{rest}"


def check_reachable(address: str, timeout: float = 5.0) -> str:
    """The dashboard URL, once something answers at its host and port; a clear StudioError otherwise."""
    url = dashboard_url(address)
    host_port = url.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise StudioError("ray_unreachable", address=address, reason="expected host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise StudioError("ray_unreachable", address=address, reason=err.strerror or str(err)) from None
    return url


def _client(address: str) -> Any:
    """Ray's JobSubmissionClient for `address`, or a StudioError naming what is missing or what did not answer."""
    url = check_reachable(address)
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise StudioError("package_not_installed", key="Ray cluster address", package="ray[default]",
                          extra="ray") from None
    try:
        return JobSubmissionClient(url)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise StudioError("ray_unreachable", address=address, reason=str(err).splitlines()[0]) from None


def entrypoint(config_path: str | Path, run_dir: str | Path, workdir: str | Path | None = None) -> str:
    """The shell command the cluster runs: the engine's train command on the config, into the run folder."""
    command = (f"python -m engine train {shlex.quote(str(Path(config_path).resolve()))} "
               f"output_dir={shlex.quote(str(Path(run_dir).resolve()))}")
    # Relative paths in the config (dataset_dir, a model folder) mean what they meant to the studio.
    return f"cd {shlex.quote(str(workdir))} && {command}" if workdir else command


def submit(address: str, config_path: str | Path, run_dir: str | Path, workdir: str | Path | None = None) -> str:
    """Send the run to the Ray cluster at `address`; returns Ray's job id (also kept in the run folder)."""
    client = _client(address)
    env = {"USE_RAY": "1", "RAY_JOB_STOP_WAIT_TIME_S": str(STOP_WAIT_S)}
    env.update({key: os.environ[key] for key in PASSED_ENV if key in os.environ})
    try:
        job_id = client.submit_job(entrypoint=entrypoint(config_path, run_dir, workdir), runtime_env={"env_vars": env},
                                   metadata={"run_dir": str(Path(run_dir).resolve())})
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise StudioError("ray_job_refused", address=address, reason=str(err).splitlines()[0]) from None
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"address": address, "job_id": job_id, "submitted_at": datetime.now(timezone.utc).isoformat()}
    (folder / JOB_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return job_id


def read_job(run_dir: str | Path) -> dict[str, Any] | None:
    """The Ray job a run folder was sent as (address, job_id), or None for a local run."""
    path = Path(run_dir) / JOB_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def status(run_dir: str | Path) -> str | None:
    """Ray's state of the run's job (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED), or None for a local run."""
    job = read_job(run_dir)
    if job is None:
        return None
    return str(_client(job["address"]).get_job_status(job["job_id"]).value)


def stop(run_dir: str | Path) -> bool:
    """Ask Ray to stop the run's job (SIGTERM to its driver, which has the workers save and stop); False if there
    was nothing to stop."""
    job = read_job(run_dir)
    if job is None:
        return False
    return bool(_client(job["address"]).stop_job(job["job_id"]))


def submit_ray_job(config_path: str | Path, run_dir: str | Path, address: str) -> dict[str, Any]:
    """The Start button's hook for a Ray cluster address: send the run, and say where to follow it.

    Inputs: the config the studio wrote, the run folder (on storage the cluster sees) and the address typed in the
    Train tab. Output: {"job_id", "address", "run_dir"}. A StudioError (address that does not answer, no ray
    package, job refused) says what is wrong before anything runs.
    """
    job_id = submit(address, config_path, run_dir, workdir=Path.cwd())
    return {"job_id": job_id, "address": address, "run_dir": str(Path(run_dir).resolve())}
