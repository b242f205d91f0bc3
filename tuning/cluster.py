"""The keras-tuner side of the distributed search (see :mod:`tuning.distributed`).

:class:`ServedOracleMixin` goes into every oracle of this package, :class:`DistributedTunerMixin`
into every tuner; :func:`serve` runs the chief's gRPC server (keras-tuner's own servicer).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import keras_tuner
from keras_tuner.engine.trial import Trial, TrialStatus

from apps.common.errors import UsageError
from apps.common.rundir import atomic_write_text
from tuning.distributed import STUDY_SEP, Distributed, rpc_error_message, wait_for_chief

IDLE_WAIT = 0.5  # seconds the chief holds an IDLE answer (workers ask again at once)


# ----------------------------------------------------------------------------- the oracle side
class ServedOracleMixin:
    """Mixed into every oracle of this package (before the keras-tuner oracle class).

    Adds study routing, heartbeat bookkeeping, reaping of silent workers and atomic state
    files; in a local (one-process) search none of it changes what the oracle does.
    """

    study: str = ""
    studies: tuple[str, ...] = ()
    worker_timeout: float = 120.0

    def serve_as(self, study: str, studies: tuple[str, ...], worker_timeout: float) -> None:
        """Name the study this oracle runs, the study order, and the reaping timeout."""
        self.study = study
        self.studies = tuple(studies)
        self.worker_timeout = float(worker_timeout)

    @property
    def _seen(self) -> dict[str, float]:
        if not hasattr(self, "_seen_at"):
            self._seen_at: dict[str, float] = {}
        return self._seen_at

    @property
    def search_stopped(self) -> bool:
        return getattr(self, "_search_stopped", False)

    # keras-tuner's own methods ------------------------------------------------------
    def create_trial(self, tuner_id: str) -> Trial:
        verdict = self._route(tuner_id)
        if verdict == "stale":
            return Trial(self.get_space(), status=TrialStatus.STOPPED)
        if verdict == "wait":
            time.sleep(IDLE_WAIT)
            return Trial(self.get_space(), status=TrialStatus.IDLE)
        trial = super().create_trial(tuner_id)
        if trial.status == TrialStatus.STOPPED:
            self._search_stopped = True
        return trial

    def get_trial(self, trial_id: str) -> Trial:
        self._touch_trial(trial_id)
        return super().get_trial(trial_id)

    def update_trial(self, trial_id: str, metrics: dict, step: int = 0) -> Trial:
        self._touch_trial(trial_id)
        return super().update_trial(trial_id, metrics, step=step)

    def end_trial(self, trial: Trial) -> None:
        self._touch_trial(trial.trial_id)
        self._forget_retry(trial.trial_id)
        worker = self._owner(trial.trial_id)
        super().end_trial(trial)
        log = getattr(self, "trial_log", None)
        if log is not None:
            done = self.trials[trial.trial_id]
            score = "-" if done.score is None else f"{done.score:.4f}"
            log(
                f"[{self.study} trial {trial.trial_id}] {done.status} "
                f"{self.objective.name}={score}" + (f" (by {worker})" if worker else "")
            )

    def save(self) -> None:
        atomic_write_text(self._get_oracle_fname(), json.dumps(self.get_state()))

    def _save_trial(self, trial: Trial) -> None:
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        atomic_write_text(path, json.dumps(trial.get_state()))

    # additions (each holds the oracle's lock, like keras-tuner's own methods) -------------
    @keras_tuner.synchronized
    def _route(self, tuner_id: str) -> str:
        _, sep, study = tuner_id.partition(STUDY_SEP)
        if sep and self.study and study != self.study:
            if study in self.studies and self.study in self.studies:
                ahead = self.studies.index(study) > self.studies.index(self.study)
                return "wait" if ahead else "stale"
            return "stale"
        self._seen[tuner_id] = time.monotonic()
        if tuner_id in self.ongoing_trials:
            return "go"
        exhausted = bool(self.max_trials) and len(self.trials) >= self.max_trials
        if exhausted and not self._retry_queue and self.ongoing_trials:
            self.tuner_ids.add(tuner_id)  # it must still get its STOPPED before the chief ends
            return "wait"
        return "go"

    @keras_tuner.synchronized
    def _touch_trial(self, trial_id: str) -> None:
        for tuner_id, trial in self.ongoing_trials.items():
            if trial.trial_id == trial_id:
                self._seen[tuner_id] = time.monotonic()

    @keras_tuner.synchronized
    def _owner(self, trial_id: str) -> str | None:
        for tuner_id, trial in self.ongoing_trials.items():
            if trial.trial_id == trial_id:
                return tuner_id
        return None

    @keras_tuner.synchronized
    def _forget_retry(self, trial_id: str) -> None:
        # A worker thought dead may still finish: its trial must not run a second time.
        if trial_id in self._retry_queue:
            self._retry_queue.remove(trial_id)

    @keras_tuner.synchronized
    def reap(self, now: float | None = None) -> list[str]:
        """Drop tuners silent for ``worker_timeout`` s; their running trials are requeued."""
        now = time.monotonic() if now is None else now
        dead = []
        for tuner_id in sorted(set(self.tuner_ids) | set(self.ongoing_trials)):
            last = self._seen.setdefault(tuner_id, now)
            if now - last > self.worker_timeout:
                dead.append(tuner_id)
        for tuner_id in dead:
            self.tuner_ids.discard(tuner_id)
            trial = self.ongoing_trials.pop(tuner_id, None)
            if trial is not None and trial.trial_id not in self._retry_queue:
                self._retry_queue.append(trial.trial_id)
            self._seen.pop(tuner_id, None)
        if dead:
            self.save()
        return dead

    @keras_tuner.synchronized
    def finished(self) -> bool:
        """No trial left to hand out or waiting, and every worker got its ``STOPPED``."""
        exhausted = self.search_stopped or (
            bool(self.max_trials) and len(self.trials) >= self.max_trials
        )
        return (
            exhausted and not self._retry_queue and not self.ongoing_trials and not self.tuner_ids
        )


def serve(
    oracle: ServedOracleMixin,
    settings: Distributed,
    *,
    poll: float = 0.25,
    log: Callable[[str], None] | None = None,
) -> None:
    """Serve ``oracle`` to workers on ``settings.address`` until its study is finished.

    Raises:
        UsageError: the address cannot be bound (port in use).
    """
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    protos.get_service_grpc().add_OracleServicer_to_server(OracleServicer(oracle), server)
    try:
        bound = server.add_insecure_port(settings.address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise UsageError(f"--oracle-port: cannot listen on {settings.address} (port in use?)")
    server.start()
    try:
        while not oracle.finished():
            time.sleep(poll)
            for tuner_id in oracle.reap():
                if log is not None:
                    log(
                        f"chief: {tuner_id} silent for {settings.worker_timeout:g}s; "
                        "its trial goes back to the queue"
                    )
    finally:
        server.stop(grace=1.0).wait()


class _BoundedStub:
    """keras-tuner's gRPC stub with a deadline on every call (its own is an hour)."""

    def __init__(self, stub: Any, timeout: float) -> None:
        self._stub = stub
        self._timeout = timeout

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)

        def call(request: Any, **kwargs: Any) -> Any:
            kwargs["timeout"] = min(kwargs.get("timeout", self._timeout), self._timeout)
            return method(request, **kwargs)

        return call


def bound_client(tuner: keras_tuner.engine.base_tuner.BaseTuner, timeout: float) -> None:
    """Give a worker tuner's ``OracleClient`` a deadline of ``timeout`` s per call."""
    stub = getattr(tuner.oracle, "stub", None)
    if stub is not None and not isinstance(stub, _BoundedStub):
        tuner.oracle.stub = _BoundedStub(stub, timeout)


class Heartbeat:
    """Calls ``oracle.get_trial(trial_id)`` every ``interval`` s while a worker trains."""

    def __init__(self, oracle: Any, trial_id: str, interval: float) -> None:
        self.oracle = oracle
        self.trial_id = trial_id
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuning-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.oracle.get_trial(self.trial_id)
            except Exception:  # noqa: BLE001, S110 - the main thread reports a lost chief
                pass


# ------------------------------------------------------------------------------- the tuners
class DistributedTunerMixin:
    """Mixed into the tuners of this package (before the keras-tuner tuner class).

    In a local search it only makes the tuner's state file atomic. A chief serves its oracle
    (:func:`serve`) instead of running trials; a worker checks that the chief answers, tags its
    requests with the study, bounds every call, and sends heartbeats while it trains.
    """

    distributed: Distributed | None = None

    def setup_distributed(self, distributed: Distributed | None, study: str) -> None:
        """Call at the end of ``__init__``."""
        self.distributed = distributed
        self._file_id = self.tuner_id  # the state file keeps the plain id (reload finds it)
        self._heartbeat: Heartbeat | None = None
        if distributed is not None and distributed.role == "worker":
            self.tuner_id = distributed.study_tuner_id(study)
            bound_client(self, distributed.connect_timeout * 10)

    def _get_tuner_fname(self) -> str:
        return os.path.join(
            str(self.project_dir), f"{getattr(self, '_file_id', self.tuner_id)}.json"
        )

    def save(self) -> None:
        if not self._is_worker():
            self.oracle.save()
        atomic_write_text(self._get_tuner_fname(), json.dumps(self.get_state()))

    def search(self, *args: Any, **kwargs: Any) -> None:
        settings = self.distributed
        if settings is None:
            return super().search(*args, **kwargs)
        if settings.role == "chief":
            self.oracle.verbose = kwargs.get("verbose", 1)
            self.oracle.trial_log = getattr(self, "log", None)
            self.save()
            serve(self.oracle, settings, log=getattr(self, "log", None))
            return None
        import grpc

        wait_for_chief(settings, log=getattr(self, "log", None))
        try:
            return super().search(*args, **kwargs)
        except grpc.RpcError as e:
            raise UsageError(rpc_error_message(e, settings)) from None

    def on_trial_begin(self, trial: Trial) -> None:
        settings = self.distributed
        if settings is not None and settings.role == "worker":
            interval = max(0.5, min(5.0, settings.worker_timeout / 4))
            self._heartbeat = Heartbeat(self.oracle, trial.trial_id, interval).start()
        super().on_trial_begin(trial)

    def on_trial_end(self, trial: Trial) -> None:
        if getattr(self, "_heartbeat", None) is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        super().on_trial_end(trial)
