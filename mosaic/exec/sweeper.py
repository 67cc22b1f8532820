"""One sweep's life on the cluster: :class:`Sweep` records the sweep row and every planned run
as ``pending`` before the first task starts, submits runs through a bounded window (so a
pause stops submitting at once), collects them with ``as_completed`` (every future state
handled: a result lost with its worker is run again), buffers rows and live history and
flushes them about once a second, and compacts the sweep's partition at the end.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from distributed import as_completed

from mosaic.config import Config, Process
from mosaic.exec import control, transfer
from mosaic.exec.batching import BatchSizer
from mosaic.exec.cluster import (
    Cluster,
    MosaicPlugin,
    check_gpu,
    execute_batch,
    open_cluster,
    plan_workers,
)
from mosaic.exec.live import LiveHistory
from mosaic.exec.progress import Event
from mosaic.exec.sources import SourceBundle, bundle_sources
from mosaic.exec.summary import SweepSummary, model_key, return_status
from mosaic.exec.task import RunOutcome, RunTask, run_seed
from mosaic.store.layout import remember_store
from mosaic.store.records import PlannedRun, SweepRecords
from mosaic.store.status import RunStatus
from mosaic.store.writer import CompactResult, Store, now

OnEvent = Callable[[Event], None]
#: A run whose worker died before it started is submitted again at most this often.
MAX_RESUBMITS = 3
#: How long fetching a finished run's outcome may take before it counts as lost with its worker
#: (a false alarm only costs a resubmission that loads the final checkpoint and trains no epoch).
FETCH_TIMEOUT_S = 5.0
#: With runs left and no worker at all for this long, the sweep stops (runs marked interrupted).
NO_WORKER_TIMEOUT_S = 600.0


class Sweep:
    """One invocation's partition of the store, from pending rows to compaction."""

    def __init__(self, store: Store, kind: str, config: Config, on_event: OnEvent | None) -> None:
        self.store = store
        self.kind = kind
        self.config = config
        self.emit: OnEvent = on_event or (lambda event: None)
        self.sweep_id = 0
        self.started_events: collections.deque[dict[str, Any]] = collections.deque()
        self.final: dict[int, str] = {}
        self.seen: dict[int, dict[str, Any]] = {}  # run -> its latest start (key, worker, device)
        self.ended: dict[int, str] = {}  # run -> the task key it last ended in
        self.summary_runs: list[tuple[int, str, float | None, str]] = []
        self.by_id: dict[int, PlannedRun] = {}
        self.fetched: dict[str, list[RunOutcome]] = {}  # key -> outcomes, filled by _fetch
        self.fetcher = ThreadPoolExecutor(4, thread_name_prefix="mosaic-fetch")
        self.lost: set[int] = set()  # runs whose result was lost with their worker
        self.alone: set[int] = set()  # runs in a batch whose worker died: from now on one per task
        self.tasks = 0  # Dask tasks submitted
        self.sizer = BatchSizer(1, config.monitor.runs_per_task)  # runs per task (mosaic.exec.batching)
        self.compacted: CompactResult | None = None
        self.sources: SourceBundle | None = None
        self.records: SweepRecords
        self.live: LiveHistory
        self.run_files = _run_files(config, store)
        self.files = transfer.RunFiles(str(self.run_files))  # marked with a token when the sweep starts
        self.send_checkpoints = False
        self.started = now()
        self.processes: dict[int, Process] = {}  # rerun: each run's own PROCESS
        self.overrides: list[tuple[int, str, str]] = []  # rerun: (run_id, key, value) params to record

    # -- the whole life of a sweep -------------------------------------------------------
    def execute(self, plan: Callable[[], list[PlannedRun]], *, new_params: bool, client: Any,
                claim: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
                **where: Any) -> SweepSummary:
        """``claim``: held while the runs are planned and recorded (resume: one owner per run).

        An embedded cluster starts (workers fork or spawn, then warm up: seconds) while the
        runs are planned and recorded; an existing one is reached first, so that an
        unreachable scheduler leaves nothing written.
        """
        starting = self._start_local(where) if client is None and not where.get("scheduler") and not where.get("scheduler_file") else None
        cluster = None if starting else open_cluster(self.config.monitor, client=client, on_event=self.emit, **where)
        try:
            self.sweep_id = self.store.new_sweep_id()
            remember_store(self.store.path)
            control.write_heartbeat(self.store, self.sweep_id, pid=os.getpid())
            seed = self.config.process.seed
            self.records = SweepRecords(self.store, self.sweep_id, self.kind, self.config, self.started,
                                        seed=lambda run_id: run_seed(seed, run_id))
            try:
                self.records.write_sweep_row(ended=False)
                with claim():
                    runs = plan()
                    self.by_id = {r.run_id: r for r in runs}
                    self.live = LiveHistory(lambda row: self.records.add("history", row), {r.run_id: r.attempt for r in runs})
                    self.sources = self._sources(runs)
                    self.records.write_planned(runs, new_params)
                    for run_id, key, value in self.overrides:  # a rerun's [RERUN] values become the runs' own
                        self.records.add("params", {"run_id": run_id, "param_name": key, "param_value": value})
                if starting is not None:
                    cluster = self._started(starting)
                self.emit(Event("start", sweep_id=self.sweep_id, total=len(runs), text=str(self.store.path)))
                clock = time.monotonic()
                paused_file = self._drive(cluster, runs)
                seconds = time.monotonic() - clock
                self.compacted = self.records.finish()
            finally:
                control.remove_heartbeat(self.store, self.sweep_id)
        finally:
            if cluster is None and starting is not None:  # planning failed: the cluster still comes up
                with contextlib.suppress(Exception):
                    cluster = self._started(starting)
            if cluster is not None:
                cluster.close()
        summary = SweepSummary(
            store=self.store.path,
            sweep_id=self.sweep_id,
            kind=self.kind,
            runs=tuple(self.summary_runs),
            statuses=tuple(str(self.final.get(r.run_id, RunStatus.PENDING)) for r in runs),
            seconds=seconds,
            run_files=self.run_files,
            paused_file=paused_file,
            tasks=self.tasks,
        )
        done = self.compacted
        text = f"sweep {self.sweep_id}: {done.files_before} files compacted into {done.files_after}" if done else ""
        self.emit(Event("end", sweep_id=self.sweep_id, total=len(runs), text=text))
        return summary

    def _start_local(self, where: dict[str, Any]) -> tuple[Future[Cluster], list[Event]]:
        """Start the embedded cluster in a thread (its checks first, here: a config that
        cannot run fails before anything is written); its events wait for :meth:`_started`."""
        check_gpu(self.config.monitor)
        plan_workers(self.config.monitor, where.get("workers"))
        events: list[Event] = []
        pool = ThreadPoolExecutor(1, thread_name_prefix="mosaic-cluster")
        future = pool.submit(open_cluster, self.config.monitor, on_event=events.append, **where)
        pool.shutdown(wait=False)  # the thread ends with the start
        return future, events

    def _started(self, starting: tuple[Future[Cluster], list[Event]]) -> Cluster:
        """The embedded cluster, once up (its events told now, on this thread)."""
        future, events = starting
        cluster = future.result()
        for event in events:
            self.emit(event)
        return cluster

    def _drive(self, cluster: Cluster, runs: list[PlannedRun]) -> Path | None:
        client = cluster.client
        self.files = transfer.plan(str(self.run_files))
        self.send_checkpoints = cluster.local is None  # its workers may not see our run files
        paths = tuple(dict.fromkeys([str(self.config.base_dir), os.getcwd()]))
        plugin = MosaicPlugin(self.sweep_id, paths, prepare=cluster.prepare)
        cluster.install(plugin)
        client.subscribe_topic(plugin.topic, self._receive)
        queue = collections.deque(runs)
        inflight: dict[str, tuple[Any, list[PlannedRun]]] = {}
        resubmits: collections.Counter[int] = collections.Counter()
        futures = as_completed(loop=client.loop)
        paused_file = None
        slots = cluster.slots
        window = 2 * slots + 2
        tick = 0.0
        idle_since: float | None = None
        serial = 0

        def submit_more() -> None:
            nonlocal serial
            while queue and len(inflight) < window:
                size = self.sizer.size(len(queue), slots)
                batch = [queue.popleft()]
                while len(batch) < size and queue and not self.alone & {batch[0].run_id, queue[0].run_id}:
                    batch.append(queue.popleft())
                if len(batch) == 1:
                    key = plugin.key(batch[0].run_id, resubmits[batch[0].run_id])
                else:
                    serial += 1
                    key = plugin.batch_key(batch[0].run_id, len(batch), serial)
                tasks = []
                for planned in batch:
                    task = self._task(planned)
                    task.callbacks.append(plugin.reporter(planned.run_id, planned.attempt, planned.epochs))
                    tasks.append(task)
                future = client.submit(execute_batch, tasks, plugin.topic, key, pure=False, key=key, resources=cluster.task_resources)
                future.add_done_callback(self._fetch)
                inflight[key] = (future, batch)
                futures.add(future)
                self.tasks += 1

        try:
            submit_more()
            while inflight or queue:
                self._drain_started()
                self.live.drain()
                batch = futures.next_batch(block=False) if futures.has_ready() else []
                for future in batch:
                    entry = inflight.pop(future.key, None)
                    if entry is not None:
                        queue.extendleft(reversed(self._collect(future, entry[1], resubmits)))
                    future.release()
                submit_more()  # after a pause the queue holds only runs to resubmit
                if time.monotonic() - tick > 0.5:
                    tick = time.monotonic()
                    slots = cluster.slots
                    window = 2 * slots + 2
                    idle_since = cluster.check_workers(idle_since, NO_WORKER_TIMEOUT_S)
                    control.write_heartbeat(self.store, self.sweep_id, pid=os.getpid(), progress=self.live.progress)
                    if paused_file is None and (request := control.claim_pause(self.store, self.sweep_id)):
                        paused_file = self._pause(request, client, queue, inflight)
                self.records.maybe_flush()
                if not batch and not futures.has_ready():
                    # as_completed notifies this condition when a future lands (as its __next__ waits)
                    with futures.thread_condition:
                        futures.thread_condition.wait(timeout=0.05)
            self._drain_started()
            self.live.drain()
        except BaseException as exc:  # Ctrl-C, or the cluster lost: leave a readable store
            reason = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else f"driver stopped: {type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):  # the original error matters more
                self._interrupt(client, runs, [f for f, _ in inflight.values()], reason)
            raise
        finally:
            self.fetcher.shutdown(wait=False, cancel_futures=True)
            futures.clear()
            with contextlib.suppress(Exception):  # the cluster may already be gone
                client.unsubscribe_topic(plugin.topic)
        return paused_file

    def _sources(self, runs: Sequence[PlannedRun]) -> SourceBundle:
        """The class files of every planned run: they travel with each task (no shared disk needed)."""
        paths = [str(s.get("path_to_class") or "") for r in runs for s in r.pipeline]
        paths += dict.fromkeys(str(self._process(r.run_id).get("path_to_class_loss_function") or "") for r in runs)
        return bundle_sources(paths, self.config.base_dir)

    def _process(self, run_id: int) -> Process:
        """The PROCESS a run trains with (a rerun: its own recorded values, see :func:`rerun`)."""
        return self.processes.get(run_id, self.config.process)

    # -- one run -------------------------------------------------------------------------
    def _task(self, planned: PlannedRun) -> RunTask:
        # a run trained before (result lost with its worker) continues to its planned total
        again = planned.run_id in self.lost and planned.total is not None
        return RunTask(
            run_id=planned.run_id,
            attempt=planned.attempt,
            sweep_id=self.sweep_id,
            pipeline=planned.pipeline,
            process=self._process(planned.run_id),
            config_dir=str(self.config.base_dir),
            run_files=str(self.run_files),
            epochs=planned.epochs,
            resume=planned.resume or again,
            until=planned.total if again or (planned.resume and self.kind == "resume") else None,
            sources=self.sources,
            files=transfer.for_task(self.files, planned.run_id, planned.resume or again, self.send_checkpoints),
            legacy_history=self.config.monitor.legacy_history,
        )

    def _fetch(self, future: Any) -> None:
        """Fetch a finished run's outcome at once (in a pool of our own: one slow fetch holds no
        other), so that its worker, dying later while running another run, cannot take it along."""
        if future.status == "finished":
            with contextlib.suppress(RuntimeError):  # the pool is shut down: the sweep ended
                self.fetcher.submit(self._fetch_now, future)

    def _fetch_now(self, future: Any) -> None:
        with contextlib.suppress(Exception):  # _collect finds out what happened
            self.fetched[future.key] = future.result(timeout=FETCH_TIMEOUT_S)

    def _collect(self, future: Any, batch: list[PlannedRun], resubmits: collections.Counter[int]) -> list[PlannedRun]:
        """Record a task (a batch of runs) that left the scheduler; the runs to submit again.

        finished: its outcomes (fetched at once by :meth:`_fetch`). error: when the worker
        died, each run is judged by what its worker announced (:meth:`_after_worker_death`);
        anything else is Mosaic's own error with its traceback. cancelled: ``system failure``.
        pending/lost: it finished on a worker that died before its result was fetched: run again.
        """
        outcomes, status = self.fetched.pop(future.key, None), future.status
        if outcomes is None and status == "finished":
            try:
                outcomes = future.result(timeout=FETCH_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - the worker holding it died: the result is lost
                status = "lost"
        if outcomes is not None:
            self.sizer.record([outcome.seconds for outcome in outcomes])
            for planned, outcome in zip(batch, outcomes, strict=True):
                self._record(planned, outcome)
            return []
        if status == "cancelled":
            for planned in batch:
                self._fail(planned, RunStatus.SYSTEM_FAILURE, f"the scheduler cancelled the run on {self._where(planned)} (cluster lost or restarted)")
            return []
        if status == "error":
            exc = future.exception(timeout=FETCH_TIMEOUT_S)
            if _is_worker_death(exc):
                return [p for p in batch if self._after_worker_death(p, future.key, exc, resubmits, len(batch) > 1)]
            text = "".join(traceback.format_exception(type(exc), exc, future.traceback(timeout=FETCH_TIMEOUT_S)))
            for planned in batch:
                self._fail(planned, RunStatus.ERROR, text)
            return []
        # pending or lost: it finished on a worker that died before its result was fetched
        return [p for p in batch if self._lost(p, resubmits)]

    def _after_worker_death(self, planned: PlannedRun, key: str, exc: BaseException, resubmits: collections.Counter[int],
                            in_batch: bool) -> bool:
        """A run of a task whose worker died: True when it must be submitted again.

        Ended in that task: it finished and its result was lost (run again from its
        checkpoint). Any other run of a batch is submitted again alone: the records of a
        worker's last milliseconds may die with it, so a run is blamed only when it ran alone.
        Alone and started: it was training, ``system failure``. Never started: submitted again.
        """
        if self.ended.get(planned.run_id) == key:
            return self._lost(planned, resubmits)
        if in_batch and resubmits[planned.run_id] < MAX_RESUBMITS:
            resubmits[planned.run_id] += 1
            self.alone.add(planned.run_id)
            return True
        if self.seen.get(planned.run_id, {}).get("key") != key and resubmits[planned.run_id] < MAX_RESUBMITS:
            resubmits[planned.run_id] += 1
            return True
        self._fail(planned, RunStatus.SYSTEM_FAILURE,
                   f"worker process died while running it ({self._where(planned)}; {type(exc).__name__}: {exc})")
        return False

    def _lost(self, planned: PlannedRun, resubmits: collections.Counter[int]) -> bool:
        """A run that finished on a worker that died before its result came back: True to run
        it again (from its checkpoint, to its planned total)."""
        where = self._where(planned)
        if resubmits[planned.run_id] < MAX_RESUBMITS:
            resubmits[planned.run_id] += 1
            self.lost.add(planned.run_id)
            self.emit(Event("warning", sweep_id=self.sweep_id, run_id=planned.run_id,
                            text=f"run {planned.run_id}: its result was lost with {where} (the process died); "
                                 "running it again from its checkpoint"))
            return True
        self._fail(planned, RunStatus.SYSTEM_FAILURE,
                   f"its result was lost {MAX_RESUBMITS + 1} times with the worker that ran it (last: {where})")
        return False

    def _where(self, planned: PlannedRun) -> str:
        return f"worker {self.seen.get(planned.run_id, {}).get('worker') or '(unknown)'}"

    def _record(self, planned: PlannedRun, outcome: RunOutcome) -> None:
        stamp = now()
        results = outcome.results or None
        status = RunStatus(outcome.status) if outcome.status in (RunStatus.DONE, RunStatus.ERROR) else RunStatus.ERROR
        shown = return_status(results) if status == RunStatus.DONE and results else (outcome.error or outcome.message or "")
        self.records.add("runs", self.records.run_row(
            planned, status, stamp, return_status=shown, worker=outcome.worker, device=outcome.device,
            error=outcome.error, seed=outcome.seed,
        ))
        self.live.drain()  # the epochs that came live are not written again
        try:
            transfer.receive(self.files, outcome.files)
        except OSError as exc:
            self.emit(Event("warning", sweep_id=self.sweep_id, run_id=planned.run_id, text=f"run files of run {planned.run_id} not written: {exc}"))
        self.records.add_outcome(planned, self.live.unwritten(planned.run_id, planned.attempt, outcome.history), results, stamp)
        self.final[planned.run_id] = status
        loss = results.get("test_loss") if results else None
        self.summary_runs.append((planned.run_id, status, loss, model_key(planned.pipeline, self.config)))
        text = shown if status == RunStatus.DONE else _last_line(outcome.error or outcome.message or "")
        if outcome.message and status == RunStatus.DONE:
            text += f"  ({outcome.message})"
        self.emit(Event("finished", sweep_id=self.sweep_id, run_id=planned.run_id, status=status, text=text,
                        worker=outcome.worker, device=outcome.device))

    def _fail(self, planned: PlannedRun, status: RunStatus, text: str) -> None:
        self.live.ended(planned.run_id)
        seen = self.seen.get(planned.run_id, {})
        self.records.add("runs", self.records.run_row(
            planned, status, now(), return_status=text, error=text, worker=seen.get("worker"), device=seen.get("device"),
        ))
        self.final[planned.run_id] = status
        self.summary_runs.append((planned.run_id, status, None, model_key(planned.pipeline, self.config)))
        self.emit(Event("finished", sweep_id=self.sweep_id, run_id=planned.run_id, status=status, text=_last_line(text)))

    def _receive(self, event: tuple[float, Any]) -> None:
        """The sweep topic's handler (on the client's event loop: only appends): epochs go
        to the live history, runs' starts and ends to :meth:`_drain_started`."""
        for record in event[1] if isinstance(event[1], list | tuple) else [event[1]]:  # a list arrives as a tuple
            if isinstance(record, dict):
                (self.live.events if record.get("event") == "epoch" else self.started_events).append(record)

    def _drain_started(self) -> None:
        while self.started_events:
            msg = self.started_events.popleft()
            run_id = int(msg["run_id"])
            planned = self.by_id.get(run_id)
            if planned is None or run_id in self.final:
                continue
            if msg.get("event") == "end":
                self.ended[run_id] = msg.get("key", "")
                continue
            self.seen[run_id] = msg
            self.records.add("runs", self.records.run_row(planned, RunStatus.RUNNING, now(), worker=msg["worker"], device=msg["device"] or None))
            self.emit(Event("running", sweep_id=self.sweep_id, run_id=run_id, worker=msg["worker"], device=msg["device"]))

    # -- pause and Ctrl-C ----------------------------------------------------------------
    def _pause(self, request: control.PauseRequest, client: Any, queue: collections.deque, inflight: dict) -> Path | None:
        not_started = [(k, f, batch) for k, (f, batch) in inflight.items()
                       if not any(self.seen.get(p.run_id, {}).get("key") == k for p in batch)]
        if not_started:
            client.cancel([f for _, f, _ in not_started])
        for key, _, _ in not_started:
            inflight.pop(key)
        left = sorted([p for _, _, batch in not_started for p in batch] + list(queue), key=lambda p: p.run_id)
        queue.clear()
        try:
            path = control.write_pause_file(
                request.pipeline_file, [p.pipeline for p in left],
                store=self.store.path, sweep_id=self.sweep_id, config=self.config,
                runs=[{"run_id": p.run_id, "attempt": p.attempt, "epochs": p.epochs, "resume": p.resume, "total": p.total}
                      for p in left],
            )
        except Exception as exc:  # noqa: BLE001 - reported to the pausing command
            control.acknowledge_pause(self.store, request, sweep_id=self.sweep_id, error=str(exc))
            self.emit(Event("warning", sweep_id=self.sweep_id, text=f"pause refused: {exc}"))
            for p in left:
                queue.append(p)
            return None
        stamp = now()
        for planned in left:
            self.records.add("runs", self.records.run_row(planned, RunStatus.PAUSED, stamp))
            self.final[planned.run_id] = RunStatus.PAUSED
        running = sum(len(batch) for _, batch in inflight.values())
        control.acknowledge_pause(self.store, request, sweep_id=self.sweep_id, paused=len(left), running=running)
        self.emit(Event("paused", sweep_id=self.sweep_id, total=len(left), text=f"{len(left)} runs saved in {path}; {running} running runs finish"))
        return path

    def _interrupt(self, client: Any, runs: Sequence[PlannedRun], futures: list[Any], reason: str) -> None:
        with contextlib.suppress(Exception):  # the cluster may be shutting down with us
            client.cancel(futures)
        stamp = now()
        for planned in runs:
            if planned.run_id not in self.final:
                self.records.add("runs", self.records.run_row(planned, RunStatus.INTERRUPTED, stamp, error=reason))
                self.final[planned.run_id] = RunStatus.INTERRUPTED
        self.compacted = self.records.finish()
        control.remove_heartbeat(self.store, self.sweep_id)
        self.emit(Event("interrupted", sweep_id=self.sweep_id, text=f"{reason}; runs not finished marked interrupted in {self.store.path}"))


def _run_files(config: Config, store: Store) -> Path | str:
    raw = config.process.run_files_path
    if raw and transfer.is_url(raw):
        return raw  # workers write there themselves (fsspec)
    if raw:
        path = Path(raw).expanduser()
        return (path if path.is_absolute() else config.base_dir / path).resolve()
    return store.default_run_files.resolve()


def _is_worker_death(exc: BaseException | None) -> bool:
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    return isinstance(exc, KilledWorker | CommClosedError)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
