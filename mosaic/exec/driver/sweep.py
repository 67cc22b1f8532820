"""One sweep's life on the cluster: :class:`Sweep` records the sweep row and every planned run
as ``pending`` before the first task starts, submits runs through a bounded window (so a
pause stops submitting at once), collects them with ``as_completed`` (every future state
handled: a result lost with its worker is run again), buffers rows and live history and
flushes them about once a second, and compacts the sweep's partition at the end.

Its parts each have a module: the runs rows and their final statuses
(:mod:`~mosaic.exec.driver.ledger`), what to do with a run whose task failed
(:mod:`~mosaic.exec.driver.policy`), how many runs a task takes
(:mod:`~mosaic.exec.driver.batching`), what the workers announce
(:mod:`~mosaic.exec.driver.live`) and the heartbeat (:mod:`~mosaic.exec.driver.heartbeat`).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mosaic import sweep as sweeps
from mosaic.config import Config, Process
from mosaic.exec.cluster.connect import Cluster, is_worker_death, open_cluster
from mosaic.exec.cluster.plugins import MosaicPlugin
from mosaic.exec.cluster.workers import WorkerPlan
from mosaic.exec.driver import heartbeat, pause
from mosaic.exec.driver.batching import FETCH_TIMEOUT_S, BatchSizer, Fetcher, Window
from mosaic.exec.driver.ledger import RunLedger
from mosaic.exec.driver.live import LiveHistory, RunStarts
from mosaic.exec.driver.policy import Decision, FaultPolicy
from mosaic.exec.driver.summary import SweepSummary, model_key, return_status
from mosaic.exec.wire import transfer
from mosaic.exec.wire.events import EPOCH, Event, read_events
from mosaic.exec.wire.sources import SourceBundle, bundle_sources
from mosaic.exec.wire.task import RunOutcome, RunTask, run_seed
from mosaic.search.decisions import decided, read_decisions
from mosaic.search.halving import Cut, Entrant, Halving, Step
from mosaic.store.layout import remember_store
from mosaic.store.records import PlannedRun, SweepRecords
from mosaic.store.status import RunStatus
from mosaic.store.writer import Store, now
from mosaic.text import last_line

OnEvent = Callable[[Event], None]
#: With runs left and no worker at all for this long, the sweep stops (runs marked interrupted).
NO_WORKER_TIMEOUT_S = 600.0


class Sweep:
    """One invocation's partition of the store, from pending rows to compaction.

    ``workers``: the embedded cluster's plan, checked by the caller (None: a remote cluster).
    ``processes``: a rerun's PROCESS per run (default: the config's); ``overrides``: the
    (run_id, key, value) params a rerun's ``[RERUN]`` section gives the runs.
    """

    def __init__(self, store: Store, kind: str, config: Config, on_event: OnEvent | None = None, *,
                 workers: WorkerPlan | None = None, processes: Mapping[int, Process] | None = None,
                 overrides: Sequence[tuple[int, str, str]] = ()) -> None:
        self.store = store
        self.kind = kind
        self.config = config
        self.emit: OnEvent = on_event or (lambda event: None)
        self.workers = workers
        self.processes = dict(processes or {})
        self.overrides = list(overrides)
        self.sweep_id = 0
        self.run_files = _run_files(config, store)
        self.files = transfer.RunFiles(str(self.run_files))  # marked with a token when the sweep starts
        self.send_checkpoints = False
        self.sources: SourceBundle | None = None
        self.policy = FaultPolicy()
        self.sizer = BatchSizer(1, config.monitor.runs_per_task)  # runs per task (mosaic.exec.driver.batching)
        self.starts = RunStarts()
        self.summary_runs: list[tuple[int, str, float | None, str]] = []
        self.fetcher = Fetcher()
        self.tasks = 0  # Dask tasks submitted
        self.by_id: dict[int, PlannedRun] = {}
        self.search: Halving | None = None  # [SEARCH] strategy = halving (mosaic.search.halving)
        self.next_rung: list[PlannedRun] = []  # runs a cut kept, to submit again
        self.holding = False  # paused: runs a cut keeps are left paused, not submitted
        self.tell_page: Callable[..., None] = lambda **_: None  # the scheduler's page, once the sweep is on it
        self.records: SweepRecords
        self.ledger: RunLedger
        self.live: LiveHistory

    # -- the whole life of a sweep -------------------------------------------------------
    def execute(self, plan: Callable[[], list[PlannedRun]], *, new_params: bool, client: Any,
                claim: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
                **where: Any) -> SweepSummary:
        """``claim``: held while the runs are planned and recorded (resume: one owner per run).

        An embedded cluster starts (workers fork or spawn, then warm up: seconds) while the
        runs are planned and recorded; an existing one is reached first, so that an
        unreachable scheduler leaves nothing written.
        """
        local = client is None and not where.get("scheduler") and not where.get("scheduler_file")
        starting = self._start_local(where) if local else None
        cluster = None if starting else open_cluster(self.config.monitor, client=client, on_event=self.emit, **where)
        runs: list[PlannedRun] = []
        try:
            runs = self._record_plan(plan, new_params, claim)
            if starting is not None:
                cluster = self._started(starting)
            self.emit(Event("start", sweep_id=self.sweep_id, total=len(runs), text=str(self.store.path)))
            clock = time.monotonic()
            assert cluster is not None  # opened above, or started just now
            paused_file = self._drive(cluster, runs)
            seconds = time.monotonic() - clock
            compacted = self.records.finish()
        finally:
            if self.sweep_id:
                heartbeat.remove_heartbeat(self.store, self.sweep_id)
            if cluster is None and starting is not None:  # planning failed: the cluster still comes up
                with contextlib.suppress(Exception):
                    cluster = self._started(starting)
            if cluster is not None:
                cluster.close()
        summary = SweepSummary(
            store=self.store.path, sweep_id=self.sweep_id, kind=self.kind, runs=tuple(self.summary_runs),
            statuses=tuple(str(self.ledger.status_of(r.run_id)) for r in runs), seconds=seconds,
            run_files=self.run_files, paused_file=paused_file, tasks=self.tasks,
        )
        text = f"sweep {self.sweep_id}: {compacted.files_before} files compacted into {compacted.files_after}"
        self.emit(Event("end", sweep_id=self.sweep_id, total=len(runs), text=text))
        return summary

    def _record_plan(self, plan: Callable[[], list[PlannedRun]], new_params: bool,
                     claim: Callable[[], contextlib.AbstractContextManager[Any]]) -> list[PlannedRun]:
        """Open the sweep (its id, heartbeat and row), then plan and record its runs under ``claim``."""
        self.sweep_id = self.store.new_sweep_id()
        remember_store(self.store.path)
        heartbeat.write_heartbeat(self.store, self.sweep_id, pid=os.getpid())
        seed = self.config.process.seed
        self.records = SweepRecords(self.store, self.sweep_id, self.kind, self.config, now(),
                                    seed=lambda run_id: run_seed(seed, run_id))
        self.ledger = RunLedger(self.records)
        self.records.write_sweep_row(ended=False)
        with claim():
            runs = plan()
            self.by_id = {r.run_id: r for r in runs}
            self.live = LiveHistory(lambda row: self.records.add("history", row), {r.run_id: r.attempt for r in runs})
            self.sources = self._sources(runs)
            self.ledger.plan(runs, new_params)
            self.search = self._search(runs)
            for run_id, key, value in self.overrides:  # a rerun's [RERUN] values become the runs' own
                self.records.add("params", {"run_id": run_id, "param_name": key, "param_value": value})
        return runs

    def _start_local(self, where: dict[str, Any]) -> tuple[Future[Cluster], list[Event]]:
        """Start the embedded cluster in a thread (its checks were made by the caller, before
        anything was written); its events wait for :meth:`_started`."""
        events: list[Event] = []
        pool = ThreadPoolExecutor(1, thread_name_prefix="mosaic-cluster")
        future = pool.submit(open_cluster, self.config.monitor, plan=self.workers, on_event=events.append, **where)
        pool.shutdown(wait=False)  # the thread ends with the start
        return future, events

    def _started(self, starting: tuple[Future[Cluster], list[Event]]) -> Cluster:
        """The embedded cluster, once up (its events told now, on this thread)."""
        future, events = starting
        cluster = future.result()
        for event in events:
            self.emit(event)
        return cluster

    def _sources(self, runs: Sequence[PlannedRun]) -> SourceBundle:
        """The class files of every planned run: they travel with each task (no shared disk needed)."""
        paths = [str(s.get("path_to_class") or "") for r in runs for s in r.pipeline]
        paths += dict.fromkeys(str(self._process(r.run_id).get("path_to_class_loss_function") or "") for r in runs)
        return bundle_sources(paths, self.config.base_dir)

    def _search(self, runs: Sequence[PlannedRun]) -> Halving | None:
        """The halving state of these runs (a resumed sweep's from the store's decisions)."""
        if not self.config.search.halving:
            return None
        process = self.config.process
        entrants = []
        for r in runs:
            dataset, model = sweeps.dataset_and_model(r.pipeline, process.data_scheme, process.pipeline_scheme)
            entrants.append(Entrant(r.run_id, dataset or "", model or "", int(r.total or r.epochs)))
        past = decided(read_decisions(self.store.path), self.by_id) if self.kind != "run" else None
        return Halving(self.config.search, entrants, past)

    def _process(self, run_id: int) -> Process:
        """The PROCESS a run trains with (a rerun: its own recorded values)."""
        return self.processes.get(run_id, self.config.process)

    # -- the loop ------------------------------------------------------------------------
    def _drive(self, cluster: Cluster, runs: list[PlannedRun]) -> Path | None:
        self.files = transfer.plan(str(self.run_files))
        self.send_checkpoints = cluster.local is None  # its workers may not see our run files
        paths = tuple(dict.fromkeys([str(self.config.base_dir), os.getcwd()]))
        plugin = MosaicPlugin(self.sweep_id, paths, prepare=cluster.prepare, runs=runs, config=self.config, kind=self.kind, run_files=self.run_files)
        cluster.install(plugin)
        self.tell_page = functools.partial(cluster.tell_page, plugin)  # a search's stops and decisions
        cluster.subscribe(plugin.topic, self._receive)
        window = Window(cluster, plugin, self.sizer, self.policy, self._task, self.fetcher.fetch)
        queue = collections.deque(self._searching(runs))
        paused_file = None
        tick = 0.0
        idle_since: float | None = None
        try:
            window.fill(queue)
            while window.inflight or queue:
                self._take_announcements()
                done = window.take_done()
                for future, batch in done:
                    if batch is not None:
                        queue.extendleft(reversed(self._collect(future, batch)))
                    future.release()
                queue.extendleft(reversed(self.next_rung))  # a cut's survivors go on first
                self.next_rung.clear()
                window.fill(queue)  # after a pause the queue holds only runs to resubmit
                if time.monotonic() - tick > 0.5:
                    tick = time.monotonic()
                    window.resize()
                    idle_since = cluster.check_workers(idle_since, NO_WORKER_TIMEOUT_S)
                    heartbeat.write_heartbeat(self.store, self.sweep_id, pid=os.getpid(), progress=self.live.progress)
                    if paused_file is None and (request := pause.claim_pause(self.store, self.sweep_id)):
                        paused_file = self._pause(request, cluster, queue, window.inflight)
                        self.holding = paused_file is not None
                self.records.maybe_flush()
                if not done:
                    window.wait(0.05)
            self._take_announcements()
            self._hold(runs)
        except BaseException as exc:  # Ctrl-C, or the cluster lost: leave a readable store
            reason = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else f"driver stopped: {type(exc).__name__}: {exc}"
            with contextlib.suppress(Exception):  # the original error matters more
                self._interrupt(cluster, runs, [f for f, _ in window.inflight.values()], reason)
            raise
        finally:
            self.fetcher.close()
            self.tasks = window.submitted
            window.clear()
            cluster.unsubscribe(plugin.topic)
        return paused_file

    def _task(self, planned: PlannedRun) -> RunTask:
        # a run trained before (result lost with its worker) continues to its planned total
        again = self.policy.continues(planned.run_id) and planned.total is not None
        rung = self.search.target(planned.run_id) if self.search is not None else None
        again = again or (self.search is not None and self.search.passed(planned.run_id))  # on from its last rung
        if rung is not None:  # halving: train to the next rung
            planned = PlannedRun(planned.run_id, planned.attempt, planned.pipeline, planned.epochs,
                                 planned.resume or again, rung)
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
            until=planned.total if again or rung is not None or (planned.resume and self.kind == "resume") else None,
            sources=self.sources,
            files=transfer.for_task(self.files, planned.run_id, planned.resume or again, self.send_checkpoints),
            legacy_history=self.config.monitor.legacy_history,
        )

    # -- a task that left the scheduler --------------------------------------------------
    def _collect(self, future: Any, batch: list[PlannedRun]) -> list[PlannedRun]:
        """Record a task (a batch of runs) that left the scheduler; the runs to submit again.

        finished: its outcomes (fetched at once by :class:`Fetcher`). error: when the worker
        died, each run is judged by the fault policy from what its worker announced;
        anything else is Mosaic's own error with its traceback. cancelled: ``system failure``.
        pending/lost: it finished on a worker that died before its result was fetched: run again.
        """
        outcomes, state = self.fetcher.take(future.key), future.status
        if outcomes is None and state == "finished":
            try:
                outcomes = future.result(timeout=FETCH_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - the worker holding it died: the result is lost
                state = "lost"
        if outcomes is not None:
            self.sizer.record([outcome.seconds for outcome in outcomes])
            for planned, outcome in zip(batch, outcomes, strict=True):
                self._record(planned, outcome)
            return []
        if state == "cancelled":
            for planned in batch:
                self._fail(planned, RunStatus.SYSTEM_FAILURE, f"the scheduler cancelled the run on {self._where(planned)} (cluster lost or restarted)")
            return []
        if state == "error":
            exc = future.exception(timeout=FETCH_TIMEOUT_S)
            if is_worker_death(exc):
                return [p for p in batch if self._decide(p, self.policy.worker_died(
                    p.run_id, ended_in_task=self.starts.ended_in(p.run_id, future.key),
                    started_in_task=self.starts.started_in(p.run_id, future.key), in_batch=len(batch) > 1), exc)]
            text = "".join(traceback.format_exception(type(exc), exc, future.traceback(timeout=FETCH_TIMEOUT_S)))
            for planned in batch:
                self._fail(planned, RunStatus.ERROR, text)
            return []
        # pending or lost: it finished on a worker that died before its result was fetched
        return [p for p in batch if self._decide(p, self.policy.result_lost(p.run_id))]

    def _decide(self, planned: PlannedRun, decision: Decision, exc: BaseException | None = None) -> bool:
        """Carry out the fault policy's ``decision`` for ``planned``: True to submit it again."""
        where = self._where(planned)
        if decision is Decision.CONTINUE:
            self.emit(Event("warning", sweep_id=self.sweep_id, run_id=planned.run_id,
                            text=f"run {planned.run_id}: its result was lost with {where} (the process died); "
                                 "running it again from its checkpoint"))
        elif decision is Decision.LOST:
            self._fail(planned, RunStatus.SYSTEM_FAILURE,
                       f"its result was lost {self.policy.max_resubmits + 1} times with the worker that ran it (last: {where})")
        elif decision is Decision.DIED:
            self._fail(planned, RunStatus.SYSTEM_FAILURE,
                       f"worker process died while running it ({where}; {type(exc).__name__}: {exc})")
        return decision.resubmit

    def _where(self, planned: PlannedRun) -> str:
        return f"worker {self.starts.worker(planned.run_id) or '(unknown)'}"

    def _record(self, planned: PlannedRun, outcome: RunOutcome) -> None:
        stamp = now()
        results = outcome.results or None
        status = RunStatus(outcome.status) if outcome.status in (RunStatus.DONE, RunStatus.ERROR) else RunStatus.ERROR
        step = self._reached(planned, outcome, status)
        if step is not None and not step.final:  # halving: it reached a rung and waits for its dataset's cut
            self._write_outcome(planned, outcome, results, stamp)
            self._apply(step)
            return
        shown = return_status(results) if status == RunStatus.DONE and results else (outcome.error or outcome.message or "")
        if not self.ledger.update(planned, status, stamp, return_status=shown, worker=outcome.worker,
                                  device=outcome.device, error=outcome.error, seed=outcome.seed):
            return
        self._write_outcome(planned, outcome, results, stamp)
        loss = results.get("test_loss") if results else None
        self.summary_runs.append((planned.run_id, status, loss, model_key(planned.pipeline, self.config)))
        text = shown if status == RunStatus.DONE else last_line(outcome.error or outcome.message or "")
        if outcome.message and status == RunStatus.DONE:
            text += f"  ({outcome.message})"
        self.emit(Event("finished", sweep_id=self.sweep_id, run_id=planned.run_id, status=status, text=text,
                        worker=outcome.worker, device=outcome.device))
        if step is not None:  # its end may complete its dataset's rung
            self._apply(step)

    def _write_outcome(self, planned: PlannedRun, outcome: RunOutcome, results: dict[str, Any] | None,
                       stamp: Any) -> None:
        """Buffer an attempt's history (the epochs not written live) and results; receive its files."""
        self.live.drain()  # the epochs that came live are not written again
        try:
            transfer.receive(self.files, outcome.files)
        except OSError as exc:
            self.emit(Event("warning", sweep_id=self.sweep_id, run_id=planned.run_id, text=f"run files of run {planned.run_id} not written: {exc}"))
        self.records.add_outcome(planned, self.live.unwritten(planned.run_id, planned.attempt, outcome.history), results, stamp)

    # -- halving ([SEARCH] strategy = halving) -------------------------------------------
    def _reached(self, planned: PlannedRun, outcome: RunOutcome, status: RunStatus) -> Step | None:
        """Tell the search that a run's task ended (None without a search, or for a finished run)."""
        if self.search is None or self.ledger.is_final(planned.run_id):
            return None
        if status == RunStatus.DONE:
            return self.search.reached(planned.run_id, outcome.history)
        return self.search.dropped(planned.run_id)

    def _apply(self, step: Step) -> None:
        """Record a step's decisions, stop the runs it cut, queue the runs it kept."""
        stamp = now()
        for cut in step.cuts:
            self.records.add("decisions", {**cut.row(), "time": stamp})
        if step.cuts:
            self.emit(Event("decision", sweep_id=self.sweep_id, total=len(step.stop), text=_cut_text(step.cuts)))
            self.tell_page(decisions=[cut.row() for cut in step.cuts])
        cut_of = {run_id: cut for cut in step.cuts for run_id in cut.runs}
        for run_id in step.stop:
            cut = cut_of[run_id]
            self._stop(self.by_id[run_id], f"stopped at epoch {cut.rung}: {cut.reason}", stamp)
        if not self.holding:
            self.next_rung.extend(self.by_id[run_id] for run_id in step.resume)

    def _stop(self, planned: PlannedRun, text: str, stamp: Any) -> None:
        if self.ledger.update(planned, RunStatus.STOPPED, stamp, return_status=text,
                              worker=self.starts.worker(planned.run_id), device=self.starts.device(planned.run_id)):
            self.summary_runs.append((planned.run_id, RunStatus.STOPPED, None, model_key(planned.pipeline, self.config)))
            self.emit(Event("finished", sweep_id=self.sweep_id, run_id=planned.run_id, status=RunStatus.STOPPED, text=text))
            self.tell_page(statuses=[(planned.run_id, RunStatus.STOPPED, text)])

    def _searching(self, runs: Sequence[PlannedRun]) -> list[PlannedRun]:
        """The runs to submit: a resumed sweep's runs that a recorded decision stopped are marked stopped."""
        if self.search is None or not self.search.stopped_before:
            return list(runs)
        stamp = now()
        for run_id in self.search.stopped_before:
            self._stop(self.by_id[run_id], "stopped by a recorded decision (see the decisions table)", stamp)
        return [r for r in runs if not self.ledger.is_final(r.run_id)]

    def _hold(self, runs: Sequence[PlannedRun]) -> None:
        """Runs a pause left waiting at a rung are paused: 'mosaic resume STORE' continues them."""
        stamp = now()
        for planned in runs:
            if not self.ledger.is_final(planned.run_id):
                self.ledger.update(planned, RunStatus.PAUSED, stamp)

    def _fail(self, planned: PlannedRun, status: RunStatus, text: str) -> None:
        self.live.ended(planned.run_id)
        if not self.ledger.update(planned, status, return_status=text, error=text,
                                  worker=self.starts.worker(planned.run_id), device=self.starts.device(planned.run_id)):
            return
        self.summary_runs.append((planned.run_id, status, None, model_key(planned.pipeline, self.config)))
        self.emit(Event("finished", sweep_id=self.sweep_id, run_id=planned.run_id, status=status, text=last_line(text)))
        if self.search is not None:  # its end may complete its dataset's rung
            self._apply(self.search.dropped(planned.run_id))

    # -- what the workers announce -------------------------------------------------------
    def _receive(self, event: tuple[float, Any]) -> None:
        """The sweep topic's handler (on the client's event loop: only appends): epochs go
        to the live history, runs' starts and ends to :attr:`starts`."""
        for record in read_events(event[1]):
            (self.live.events if record.kind == EPOCH else self.starts.events).append(record)

    def _take_announcements(self) -> None:
        """Buffer the epochs received as history rows; record the runs that started as running."""
        for start in self.starts.drain():
            planned = self.by_id.get(start.run_id)
            if planned is not None and self.ledger.update(planned, RunStatus.RUNNING, worker=start.worker,
                                                          device=start.device or None):
                self.emit(Event("running", sweep_id=self.sweep_id, run_id=start.run_id, worker=start.worker, device=start.device))
        self.live.drain()

    # -- pause and Ctrl-C ----------------------------------------------------------------
    def _pause(self, request: pause.PauseRequest, cluster: Cluster, queue: collections.deque[PlannedRun],
               inflight: dict[str, tuple[Any, list[PlannedRun]]]) -> Path | None:
        not_started = [(k, f, batch) for k, (f, batch) in inflight.items()
                       if not any(self.starts.started_in(p.run_id, k) for p in batch)]
        if not_started:
            cluster.cancel([f for _, f, _ in not_started])
        for key, _, _ in not_started:
            inflight.pop(key)
        left = sorted([p for _, _, batch in not_started for p in batch] + list(queue), key=lambda p: p.run_id)
        queue.clear()
        try:
            path = pause.write_pause_file(
                request.pipeline_file, [p.pipeline for p in left],
                store=self.store.path, sweep_id=self.sweep_id, config=self.config,
                runs=[{"run_id": p.run_id, "attempt": p.attempt, "epochs": p.epochs, "resume": p.resume, "total": p.total}
                      for p in left],
            )
        except Exception as exc:  # noqa: BLE001 - reported to the pausing command
            pause.acknowledge_pause(self.store, request, sweep_id=self.sweep_id, error=str(exc))
            self.emit(Event("warning", sweep_id=self.sweep_id, text=f"pause refused: {exc}"))
            queue.extend(left)
            return None
        stamp = now()
        for planned in left:
            self.ledger.update(planned, RunStatus.PAUSED, stamp)
        running = sum(len(batch) for _, batch in inflight.values())
        pause.acknowledge_pause(self.store, request, sweep_id=self.sweep_id, paused=len(left), running=running)
        self.emit(Event("paused", sweep_id=self.sweep_id, total=len(left), text=f"{len(left)} runs saved in {path}; {running} running runs finish"))
        return path

    def _interrupt(self, cluster: Cluster, runs: Sequence[PlannedRun], futures: list[Any], reason: str) -> None:
        with contextlib.suppress(Exception):  # the cluster may be shutting down with us
            cluster.cancel(futures)
        stamp = now()
        for planned in runs:
            self.ledger.update(planned, RunStatus.INTERRUPTED, stamp, error=reason)
        self.records.finish()
        heartbeat.remove_heartbeat(self.store, self.sweep_id)
        self.emit(Event("interrupted", sweep_id=self.sweep_id, text=f"{reason}; runs not finished marked interrupted in {self.store.path}"))


def _cut_text(cuts: Sequence[Cut]) -> str:
    """One line for a cut: ``dataset OR, epoch 3: kept a, b; stopped c, d``."""
    first = cuts[0]
    kept = ", ".join(c.model for c in cuts if c.kept)
    stopped = ", ".join(c.model for c in cuts if not c.kept) or "none"
    return f"dataset {first.dataset}, epoch {first.rung} ({first.metric}): kept {kept}; stopped {stopped}"


def _run_files(config: Config, store: Store) -> Path | str:
    raw = config.process.run_files_path
    if raw and transfer.is_url(raw):
        return raw  # workers write there themselves (fsspec)
    if raw:
        path = Path(raw).expanduser()
        return (path if path.is_absolute() else config.base_dir / path).resolve()
    return store.default_run_files.resolve()
