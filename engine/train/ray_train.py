"""Training across a Ray cluster's workers (USE_RAY=1): Ray Train's TorchTrainer runs our training body on
`ray_num_workers` workers, each with torch.distributed already set up by Ray (gloo on CPU, nccl on GPU).

The process that calls `run_ray_training` is the driver: it owns the run folder (lock, running_log.txt, status.json,
the final state) through the one job lifecycle of engine/jobs.py, while the workers run the body only and rank 0
alone writes trainer_log.jsonl, checkpoints and weights. The run folder must be on storage the driver and every
worker see under the same path (`ray_storage_path` likewise, for Ray's own results).

A stop (SIGTERM to the driver) reaches the workers through a file in the run folder: they agree on it at the next
step end, save a checkpoint and stop, and the run ends `aborted`. A second stop does not wait: the driver leaves
Ray, which ends the workers with it.

Torch-free and Ray-free at import: `ray` is imported only when a run asks for it.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from engine.config import RunConfig
from engine.errors import ConfigError, Setting, StudioError
from engine.jobs import Job, StopSignal, run_job
from engine.runfolder import clear_results, has_results, list_checkpoints
from engine.train.run import _train, prepare_run_dir

logger = logging.getLogger("engine")

STOP_FILE = ".ray_stop"
"""Present in the run folder while the driver asks the workers to stop."""
WORKER_ENV = "STUDIO_RAY_WORKER"
"""Set in Ray workers, so that the training body they run never dispatches to Ray again."""
# The environment a worker needs to read the same files and models the driver does.
PROPAGATED_ENV = ("STUDIO_", "HF_", "TRANSFORMERS_", "TOKENIZERS_", "WANDB_", "MLFLOW_", "SWANLAB_")


def wants_ray() -> bool:
    """USE_RAY=1 (LLaMA-Factory's switch), outside a Ray worker."""
    return os.environ.get("USE_RAY", "0").lower() in ("1", "true") and WORKER_ENV not in os.environ


def import_ray() -> Any:
    """The `ray` module, or a StudioError naming the extra that installs it."""
    try:
        import ray
        import ray.train.torch  # noqa: F401 - Ray Train comes with the `train` extra of ray
    except ImportError:
        raise StudioError("package_not_installed", key="USE_RAY=1", package="ray[default,train]",
                          extra="ray") from None
    return ray


def check_address(address: str | None) -> None:
    """Refuse a host:port address (or ray://, http://) that does not answer, before anything starts."""
    if not address or address in ("auto", "local"):
        return
    rest = address.split("://", 1)[-1].split("/", 1)[0]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise StudioError("ray_unreachable", address=address, reason="expected host:port")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as err:
        raise StudioError("ray_unreachable", address=address, reason=err.strerror or str(err)) from None


def worker_resources(config: RunConfig, cluster: dict[str, float]) -> dict[str, float]:
    """What each worker asks of Ray: `resources_per_worker`, else one GPU when the cluster has GPUs, else one CPU."""
    asked = config.training.resources_per_worker
    if asked:
        return {str(name): float(amount) for name, amount in asked.items()}
    return {"GPU": 1.0} if cluster.get("GPU", 0) >= 1 else {"CPU": 1.0}


def check_resources(config: RunConfig, per_worker: dict[str, float], cluster: dict[str, float]) -> None:
    """Ray would wait for ever for resources the cluster lacks: say so instead."""
    workers = config.training.ray_num_workers
    for name, amount in per_worker.items():
        if workers * amount > cluster.get(name, 0):
            raise ConfigError("ray_too_few_resources", key=Setting("ray_num_workers"), workers=workers,
                              needed=f"{workers * amount:g} {name}", available=f"{cluster.get(name, 0):g} {name}")


# ray.init arguments that size a cluster: they go to the head we start, never to a connection.
HEAD_OPTIONS = {"num_cpus": "--num-cpus", "num_gpus": "--num-gpus", "object_store_memory": "--object-store-memory"}


class LocalHead:
    """A Ray head on this machine for one run, in a session of its own.

    ray.init() would start the cluster inside the driver's process group, where the studio's stop (SIGTERM to the
    group) would kill the cluster under the workers before they could save. This head ends with the run, and with
    the driver if the driver is killed (the kernel signals it on its parent's death).
    """

    def __init__(self, options: dict[str, Any]) -> None:
        import subprocess

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        ray_cli = Path(sys.executable).with_name("ray")
        command = [str(ray_cli) if ray_cli.exists() else "ray", "start", "--head", "--block",
                   "--node-ip-address", "127.0.0.1", "--port", str(port), "--include-dashboard", "false",
                   "--disable-usage-stats"]
        for key, flag in HEAD_OPTIONS.items():
            if options.get(key) is not None:
                command += [flag, str(options[key])]
        env = dict(os.environ)
        if env.get("RAY_AUTH_MODE") != "token":  # `ray` was imported before the run could make its token
            env["RAY_AUTH_MODE"] = "disabled"
        self.process = subprocess.Popen(command, stdout=sys.stderr, stderr=sys.stderr, env=env,
                                        start_new_session=True, preexec_fn=_die_with_parent)
        self._wait(port)

    def _wait(self, port: int, timeout: float = 120.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StudioError("ray_unreachable", address=self.address,
                                  reason=f"`ray start --head` exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise StudioError("ray_unreachable", address=self.address, reason="the local head did not start in time")

    def stop(self) -> None:
        """End the head and every process it started (workers included)."""
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        try:  # agents the head's raylet started can outlive it: they share its process group
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _local_address(config: RunConfig) -> bool:
    """Whether the run starts a head of its own (no cluster address given)."""
    address = (config.training.ray_init_kwargs or {}).get("address") or os.environ.get("RAY_ADDRESS")
    return not address or address == "local"


def _make_run_token() -> None:
    """Ray's servers listen on every interface whatever the node address says: a token made for this run's own
    head keeps everyone else out. Set before `ray` is imported (it reads the mode then); the head, and through it
    the workers, inherit it."""
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)})


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent (the driver) dies, however it dies (Linux only)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _job_env_vars() -> dict[str, str]:
    """The environment variables of the Ray job this driver runs as (empty outside a job)."""
    import json

    try:
        job = json.loads(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") or "{}")
        return dict((job.get("runtime_env") or {}).get("env_vars") or {})
    except (ValueError, AttributeError, TypeError):
        return {}


def _connect(ray: Any, config: RunConfig) -> LocalHead | None:
    """Join the cluster `ray_init_kwargs` (or RAY_ADDRESS) names, or start a head on this machine and join it."""
    kwargs = dict(config.training.ray_init_kwargs or {})
    address = kwargs.get("address") or os.environ.get("RAY_ADDRESS")
    head = None
    if _local_address(config):
        head = LocalHead({key: kwargs.pop(key, None) for key in HEAD_OPTIONS})
        kwargs["address"] = address = head.address
    check_address(address)
    # Under a Ray job the job's own variables reach the workers already, and Ray refuses to set one twice.
    job_env = _job_env_vars()
    env = {key: value for key, value in os.environ.items() if key.startswith(PROPAGATED_ENV) and key not in job_env}
    runtime_env = dict(kwargs.pop("runtime_env", None) or {})
    runtime_env["env_vars"] = {**env, **runtime_env.get("env_vars", {}), WORKER_ENV: "1"}
    kwargs.pop("include_dashboard", None)  # a dashboard belongs to the head, not to a connection
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # the workers' lines go to running_log.txt: no colour codes
    try:
        ray.init(runtime_env=runtime_env, **kwargs)
    except (ConnectionError, RuntimeError) as err:
        if head is not None:
            head.stop()
        raise StudioError("ray_unreachable", address=address, reason=str(err).splitlines()[0]) from None
    return head


class DriverStop(StopSignal):
    """The driver's stop: the first one leaves the stop file for the workers, a second one stops at once."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.stop_file = run_dir / STOP_FILE

    def _handle(self, signum: int, frame: Any) -> None:
        if not self.requested:
            self.stop_file.touch()
            print("Stop requested: the Ray workers save a checkpoint at the next step and stop.", file=sys.stderr)
        super()._handle(signum, frame)


def _stop_callback(run_dir: Path) -> Any:
    """The workers' AbortCallback, which also stops when the driver's stop file appears."""
    from engine.train.callbacks import AbortCallback

    class RayStopCallback(AbortCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
            if (run_dir / STOP_FILE).exists():
                self.requested = True
            return super().on_step_end(args, state, control, **kwargs)

    return RayStopCallback()


def train_worker(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: the same training body as a local run, in the driver's working directory."""
    if os.path.isdir(loop_config["cwd"]):
        os.chdir(loop_config["cwd"])  # relative dataset and model paths mean what they meant to the driver
    os.environ[WORKER_ENV] = "1"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    config: RunConfig = loop_config["config"]
    run_dir = Path(loop_config["run_dir"])
    job = Job("train", run_dir, config, stop=_stop_callback(run_dir), main=False)
    _train(job, loop_config["resume"])  # an exception here fails the Ray run, and the driver records it


def _fit(job: Job, resume: str | None) -> dict[str, Any]:
    """The driver's body: start the Ray Train run and wait for it; an abort names its checkpoint."""
    ray = import_ray()
    from ray.train import RunConfig as RayRunConfig
    from ray.train import ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    config, run_dir = job.config, job.run_dir
    (run_dir / STOP_FILE).unlink(missing_ok=True)  # an earlier run's stop must not stop this one
    head = _connect(ray, config)
    job.stop.install()  # ray.init took SIGTERM over (to exit at once): a stop must reach the workers first
    try:
        cluster = {name: float(amount) for name, amount in ray.cluster_resources().items()}
        per_worker = worker_resources(config, cluster)
        check_resources(config, per_worker, cluster)
        use_gpu = per_worker.get("GPU", 0) > 0
        t = config.training
        logger.info("Ray Train: %s workers, %s each, %s placement, on a cluster with %s", t.ray_num_workers,
                    per_worker, t.placement_strategy, {k: v for k, v in cluster.items() if k in ("CPU", "GPU")})
        trainer = TorchTrainer(
            train_worker,
            train_loop_config={"config": config, "run_dir": str(run_dir), "resume": resume, "cwd": os.getcwd()},
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo", timeout_s=t.ddp_timeout),
            scaling_config=ScalingConfig(num_workers=t.ray_num_workers, use_gpu=use_gpu,
                                         resources_per_worker=per_worker, placement_strategy=t.placement_strategy),
            run_config=RayRunConfig(name=t.ray_run_name or run_dir.name,
                                    storage_path=str(Path(t.ray_storage_path).expanduser().resolve())),
        )
        _raise_worker_error(trainer)
    finally:
        (run_dir / STOP_FILE).unlink(missing_ok=True)
        ray.shutdown()  # the run's workers end with the driver's connection
        if head is not None:
            head.stop()
    if not job.stop.requested:
        return {}
    checkpoints = list_checkpoints(run_dir)
    return {"checkpoint": str(checkpoints[-1]) if checkpoints else None}


def _raise_worker_error(trainer: Any) -> None:
    """Run `trainer.fit()`; a worker's own error (a StudioError, out of memory, …) is raised as it was."""
    from ray.train import TrainingFailedError

    try:
        trainer.fit()
    except TrainingFailedError as err:
        failures = getattr(err, "worker_failures", None) or {}
        for rank in sorted(failures):
            cause = failures[rank]
            print(f"Ray worker {rank} failed: {cause!r}", file=sys.stderr)
            if isinstance(cause, BaseException):
                raise cause from None
        raise


def run_ray_training(config: RunConfig) -> int:
    """Train on a Ray cluster into the run folder, with this process owning its status; returns the exit code."""
    if _local_address(config) and "ray" not in sys.modules:
        _make_run_token()
    import_ray()  # before the folder is touched: a missing package or a dead address is a config mistake
    check_address((config.training.ray_init_kwargs or {}).get("address") or os.environ.get("RAY_ADDRESS"))
    if config.training.output_dir:
        config.training.output_dir = str(Path(config.training.output_dir).expanduser().resolve())
    run_dir, resume = prepare_run_dir(config)
    config.training.output_dir = str(run_dir.resolve())  # workers on other nodes need the absolute path
    run_dir = Path(config.training.output_dir)
    overwrite = resume is None and config.training.overwrite_output_dir and has_results(run_dir)
    job = Job("train", run_dir, config, stop=DriverStop(run_dir), clear=clear_results if overwrite else None,
              interrupted="Stopped before the Ray workers could save a checkpoint.")
    return run_job(job, lambda: _fit(job, resume))
