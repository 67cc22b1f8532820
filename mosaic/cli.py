"""The ``mosaic`` command and the legacy ``mosaic_<cmd>`` aliases.

Each subcommand parses its arguments, calls the public function of the same name in
:mod:`mosaic` and prints what it returns. Any :class:`~mosaic.errors.MosaicError` becomes
one line on stderr and exit code 2. Nothing else lives here.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import mosaic
from mosaic.console import console_progress, console_watch
from mosaic.errors import MosaicError
from mosaic.exec.wire.events import Event

#: subcommand -> public function of mosaic it calls (tests keep this honest)
COMMANDS: dict[str, str] = {}


def _command(sub: argparse._SubParsersAction, name: str, api: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
    COMMANDS[name] = api
    return sub.add_parser(name, help=help, description=description or help)


def _add_selection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("-id", metavar="ID,RANGE,LIST", help="run ids: 3, 1-3,7,10-12 or all")
    group.add_argument("-request", metavar="SQL", help="a SQL query returning run ids")
    for flag, legacy, text in (
        ("-param_name_and_value", "-param_name_value", "runs whose parameter NAME equals VALUE"),
        ("-param_name_and_value_low_threshold", "-param_name_value_low_threshold", "runs whose parameter NAME is at most VALUE (NAME <= VALUE, inclusive)"),
        ("-param_name_and_value_high_threshold", "-param_name_value_high_threshold", "runs whose parameter NAME is at least VALUE (NAME >= VALUE, inclusive)"),
    ):
        group.add_argument(flag, legacy, nargs=2, metavar=("NAME", "VALUE"), help=text)


def _selection(args: argparse.Namespace) -> mosaic.Selection:
    return mosaic.Selection(
        ids=args.id,
        request=args.request,
        equal=args.param_name_and_value,
        below=args.param_name_and_value_low_threshold,
        above=args.param_name_and_value_high_threshold,
    )


def _add_cluster(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask scheduler (tcp://host:8786) instead of a local cluster")
    group.add_argument("--scheduler-file", metavar="FILE", help="use the Dask scheduler described by this file")
    parser.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: nb_processus, or one per GPU)")
    parser.add_argument("--no-progress", action="store_true", help="print one line per finished run instead of a progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The full ``mosaic`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="mosaic",
        description="Compare PyTorch models: expand an .ini into pipelines, train them on Dask, "
        "store results in Parquet, query them with SQL and plot them.",
    )
    parser.add_argument("--version", action="version", version=f"mosaic {mosaic.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_sweep_commands(sub)
    _add_store_commands(sub)
    _add_plot_commands(sub)
    return parser


def _add_sweep_commands(sub: argparse._SubParsersAction) -> None:
    """init, generate, and the commands that train, watch and steer sweeps."""
    p = _command(sub, "init", "init", "copy the tutorial (config.ini, dataset.py, mlp.py) into a folder")
    p.add_argument("directory", help="folder to create or fill")
    p.add_argument("--force", action="store_true", help="overwrite existing tutorial files")
    p.set_defaults(handler=_init)

    p = _command(sub, "generate", "generate", "expand a config into a legacy pipeline file (JSON)")
    p.add_argument("config_file", help="the .ini file")
    p.add_argument("pipelines_file", help="output .json file")
    p.set_defaults(handler=_generate)

    p = _command(sub, "run", "run", "generate the pipelines of a config and train them all on Dask")
    p.add_argument("config_file", help="the .ini file")
    p.add_argument("database_file", metavar="store", help="results store (a folder; created if missing, appended to otherwise)")
    _add_cluster(p)
    p.set_defaults(handler=_run)

    p = _command(sub, "status", "status", "show done, failed, running and pending runs of a store")
    p.add_argument("database_file", metavar="store", nargs="?", help="the store (default: the last one 'mosaic run' used)")
    p.add_argument("--watch", action="store_true", help="refresh in place until no driver writes the store (Ctrl-C stops)")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="seconds between refreshes with --watch (default 2)")
    p.set_defaults(handler=_status)

    p = _command(sub, "pause", "pause", "stop submitting runs; running ones finish; the rest go to a pipeline file")
    p.add_argument("database_file", metavar="store", nargs="?", help="the store being written (default: the last one used)")
    p.add_argument("pipeline_file", help="where to write the pipelines not yet run (.json)")
    p.set_defaults(handler=_pause)

    p = _command(
        sub, "resume", "resume", "finish a store's unfinished runs, or run the pipelines a pause left",
        description="mosaic resume STORE: every unfinished run of the store (pending, interrupted, paused, "
        "or running with no live driver) trains to its planned epochs from its last "
        "checkpoint, keeping its run id; refused while a live driver owns them. mosaic resume FILE.json: "
        "run the pipelines 'mosaic pause' saved in FILE.json. No argument: the last store used.",
    )
    p.add_argument("source", nargs="?", metavar="STORE_OR_PIPELINE_FILE",
                   help="a store folder (default: the last one used) or a .json file written by 'mosaic pause'")
    p.add_argument("--store", help="pipeline file form: store to write to (default: the one recorded by the pause)")
    p.add_argument("--config", help="config for the PROCESS/MONITOR settings (default: the one the sweep recorded)")
    _add_cluster(p)
    p.set_defaults(handler=_resume)

    p = _command(sub, "rerun", "rerun", "continue training selected runs from their checkpoints")
    p.add_argument("config_file", help="an .ini file with a [MONITOR] section; each run keeps its recorded PROCESS "
                   "values (lr, loss, optimizer...) unless a [RERUN] section sets the key (e.g. lr = 1e-4); "
                   "[PROCESS] is ignored, as in the original")
    p.add_argument("database_file", metavar="store", help="the store of the first run")
    _add_selection(p)
    p.add_argument("-epoch", "-epochs", dest="epochs", type=int, metavar="EPOCHS",
                   help="more epochs to train (default: [RERUN] epochs, else each run's recorded epochs)")
    _add_cluster(p)
    p.set_defaults(handler=_rerun)

    p = _command(sub, "promote", "promote", "train runs a search stopped on to their planned epochs")
    p.add_argument("database_file", metavar="store", help="the store of the stopped runs")
    _add_selection(p)
    p.add_argument("--config", help="config for the MONITOR settings (default: the one the runs' sweep recorded)")
    _add_cluster(p)
    p.set_defaults(handler=_promote)


def _add_store_commands(sub: argparse._SubParsersAction) -> None:
    """The commands that copy, convert, rewrite, compact and query stores."""
    p = _command(sub, "savedb", "savedb", "write a consistent sqlite snapshot (the original's four tables), also mid-run")
    p.add_argument("database_file", metavar="store", nargs="?", help="the store (default: the last one used)")
    p.add_argument("database_copy_path", help="the .db file to write")
    p.set_defaults(handler=_savedb)

    p = _command(sub, "export", "export", "export a store to the original tool's sqlite layout")
    p.add_argument("store", help="the store")
    p.add_argument("database_file", help="the .db file to write")
    p.add_argument("--history-dir", help="also write the original's history_<id>.pt files here")
    p.set_defaults(handler=_export)

    p = _command(sub, "import", "import_db", "import a database written by the original tool into a store")
    p.add_argument("database_file", help="the original's .db file")
    p.add_argument("store", help="the store to create or append to")
    p.add_argument("--history-dir", help="folder of the original's history_<id>.pt files (its run_files_path)")
    p.set_defaults(handler=_import)

    p = _command(sub, "rekey", "rekey", "rewrite the keys of runs from a regenerated pipeline file")
    p.add_argument("pipeline_file", help="pipeline file from 'mosaic generate' with the new keys")
    p.add_argument("database_file", metavar="store", help="the store to update")
    p.set_defaults(handler=_rekey)

    p = _command(sub, "compact", "compact", "merge each sweep's small Parquet files into one")
    p.add_argument("store", help="the store")
    p.set_defaults(handler=_compact)

    p = _command(sub, "query", "query", "run read-only SQL over a store (views: params, runs, run_results, system, history, sweeps; verdict, verdict_across)")
    p.add_argument("store", help="the store (or a .db written by the original tool)")
    p.add_argument("sql", help="the SQL statement")
    p.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table", help="output format (default: table)")
    p.add_argument("-o", "--output", help="write to this file instead of stdout (required for parquet)")
    p.set_defaults(handler=_query)

    p = _command(sub, "ui", "ui", "serve the live page over a store (finished or running), read-only, in a browser",
                 description="The page 'mosaic run' links to while a sweep trains (counts, models, curves, verdict so "
                 "far, failures, every run), read from a store or a database of the original tool. Ctrl-C stops.")
    p.add_argument("store", help="the store (or a .db written by the original tool)")
    p.add_argument("--port", type=int, default=8790, help="port to listen on (default 8790; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; the page has no authentication)")
    p.add_argument("--run-files", help="folder of the runs' logs, when not where the store's sweeps put them")
    p.set_defaults(handler=_ui)


def _add_plot_commands(sub: argparse._SubParsersAction) -> None:
    """The commands that draw: loss curves, metaplots, the report."""
    p = _command(sub, "plotloss", "plotloss", "PDF of train/test loss curves, plot_size x plot_size per page")
    p.add_argument("database_file", metavar="store", help="the store (or a .db written by the original tool)")
    p.add_argument("pdf_path", help="output file (.pdf, .png, .svg or .html)")
    p.add_argument("run_files_path", nargs="?", help="run files folder (histories of an original database)")
    _add_selection(p)
    p.add_argument("-plot_size", type=int, default=2, help="plots per page side: plot_size x plot_size (default 2)")
    p.add_argument("--log", action="store_true", help="log-scale loss axis")
    p.set_defaults(handler=_plotloss)

    p = _command(sub, "metaplot", "metaplot", "a criterion against nb_params, one line per model, for one dataset key")
    p.add_argument("database_file", metavar="store", help="the store (or a .db written by the original tool)")
    p.add_argument("output_file", help="output file: .pdf, .png, .svg or .html")
    p.add_argument("dataset_key_criterion", metavar="dataset_key", help="the dataset key to study")
    p.add_argument("param_criterion", metavar="criterion", help="train_loss, test_loss, train_acc, test_acc, nb_params, duration(s), epochs, overfit, trainability, slope")
    p.add_argument("--group-by", metavar="PARAM", help="parameter that names the lines (default: the model type's key)")
    p.add_argument("--intervals", action="store_true", help="bands: 95%% bootstrap interval of the mean (as in the verdict), not ±std")
    p.set_defaults(handler=_metaplot)

    p = _command(sub, "verdict", "verdict", "which model is best on which dataset, and how sure: intervals, tests, verdicts",
                 description="Per dataset, one row per model: replicates, mean with a bootstrap interval, rank, a "
                 "Holm-corrected permutation test against the best, and a verdict (best, tied, worse, inconclusive); "
                 "across datasets: average ranks, Friedman test, Nemenyi critical difference.")
    p.add_argument("store", help="the store (or a .db written by the original tool)")
    p.add_argument("--metric", default="test_loss", help="a numeric run_results column, each done run's final value (default test_loss)")
    direction = p.add_mutually_exclusive_group()
    direction.add_argument("--higher-is-better", dest="higher_is_better", action="store_const", const=True,
                           help="higher values are better (the default for names with 'acc')")
    direction.add_argument("--lower-is-better", dest="higher_is_better", action="store_const", const=False,
                           help="lower values are better (the default for names with 'loss')")
    p.add_argument("--level", type=float, default=0.95, help="confidence level of intervals and tests (default 0.95)")
    p.add_argument("--rope", type=float, metavar="WIDTH", help="tied means practically equivalent: the difference within ±WIDTH")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0: the same store gives the same verdict)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format (default: table)")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(handler=_verdict)

    p = _command(sub, "replay", "replay", "what successive halving would have stopped on a finished full-grid store",
                 description="Replays the rungs of [SEARCH] strategy = halving on the recorded histories, dataset by "
                 "dataset, with the rule a halving sweep applies: which pipelines it would have stopped where, the "
                 "epochs it would have trained against the grid's, and whether the verdict's best would have survived.")
    p.add_argument("store", help="a store of a finished full grid (no stopped runs)")
    p.add_argument("--reduction-factor", type=int, default=3, metavar="N", help="keep the best 1/N pipelines at each rung (default 3)")
    p.add_argument("--min-epochs", type=int, default=1, metavar="EPOCHS", help="the first rung; the next ones are N times further (default 1)")
    p.add_argument("--metric", default="test_loss", choices=("test_loss", "train_loss", "test_acc", "train_acc"),
                   help="the history column the rungs compare (default test_loss)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format (default: table; csv: the decisions)")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(handler=_replay)

    p = _command(sub, "report", "report", "one-page study report: summary, metaplots, best loss curves (.html or .pdf)")
    p.add_argument("store", help="the store (or a .db written by the original tool)")
    p.add_argument("output", help="output file: .html or .pdf")
    p.add_argument("--run-files", help="run files folder (histories of an original database)")
    p.set_defaults(handler=_report)


def _echo(text: object = "") -> None:
    print(text)


def _warn(text: str) -> None:
    print(f"mosaic: warning: {text}", file=sys.stderr)


def _init(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    config = function(args.directory, force=args.force)
    _echo(f"tutorial copied to {config.parent}; next: mosaic run {config} {config.parent / 'results'}")
    return 0


def _generate(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    if Path(args.pipelines_file).suffix != ".json":
        raise mosaic.UsageError(f"{args.pipelines_file}: not a .json file (the original's rule); e.g. pipelines.json")
    config = mosaic.load_config(args.config_file)
    for warning in config.warnings:
        _warn(warning)
    pipelines = function(config)
    mosaic.write_pipelines(pipelines, args.pipelines_file)
    _echo(f"{len(pipelines)} pipelines saved in {args.pipelines_file}")
    return 0


def _progress(args: argparse.Namespace) -> contextlib.AbstractContextManager[Callable[[Event], None]]:
    return console_progress(plain=args.no_progress)


def _cluster_kwargs(args: argparse.Namespace) -> dict:
    return {"scheduler": args.scheduler, "scheduler_file": args.scheduler_file, "workers": args.workers}


def _run(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    with _progress(args) as on_event:
        summary = function(args.config_file, args.database_file, on_event=on_event, **_cluster_kwargs(args))
    _echo(summary.render())
    return summary.exit_code


def _resume(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    with _progress(args) as on_event:
        summary = function(args.source, store=args.store, config=args.config, on_event=on_event, **_cluster_kwargs(args))
    _echo(summary.render())
    return summary.exit_code


def _rerun(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    with _progress(args) as on_event:
        summary = function(args.config_file, args.database_file, _selection(args), epochs=args.epochs, on_event=on_event, **_cluster_kwargs(args))
    _echo(summary.render())
    return summary.exit_code


def _promote(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    with _progress(args) as on_event:
        summary = function(args.database_file, _selection(args), config=args.config, on_event=on_event, **_cluster_kwargs(args))
    _echo(summary.render())
    return summary.exit_code


def _status(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    if not args.watch:
        _echo(function(args.database_file).render())
        return 0
    with contextlib.suppress(KeyboardInterrupt):  # the way to stop watching: not an error
        console_watch(mosaic.watch_status(args.database_file, interval=args.interval))
    return 0


def _pause(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    _echo(function(args.database_file, args.pipeline_file).render())
    return 0


def _savedb(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    path = function(args.database_file, args.database_copy_path)
    _echo(f"database saved in {path}")
    return 0


def _export(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    path = function(args.store, args.database_file, history_dir=args.history_dir)
    _echo(f"exported to {path}")
    return 0


def _import(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    _echo(function(args.database_file, args.store, history_dir=args.history_dir).render())
    return 0


def _rekey(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    changed = function(args.pipeline_file, args.database_file)
    _echo(f"{changed} keys rewritten")
    return 0


def _compact(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    _echo(function(args.store).render())
    return 0


def _query(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    text = function(args.store, args.sql, format=args.format, output=args.output)
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _ui(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    server = function(args.store, port=args.port, host=args.host, run_files=args.run_files)
    for warning in server.warnings:
        _warn(warning)
    _echo(f"serving {server.store} at {server.url} (read-only; Ctrl-C stops)")
    sys.stdout.flush()  # the link, now: a script reading it waits on a pipe
    try:
        with contextlib.suppress(KeyboardInterrupt):  # the way to stop serving: not an error
            server.wait()
    finally:
        server.close()
    return 0


def _plotloss(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    result = function(
        args.database_file, args.pdf_path, args.run_files_path,
        selection=_selection(args), plot_size=args.plot_size, log_scale=args.log,
    )
    _echo(result.render())
    return 0


def _metaplot(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    result = function(args.database_file, args.output_file, args.dataset_key_criterion, args.param_criterion,
                      group_by=args.group_by, intervals=args.intervals)
    _echo(result.render())
    return 0


def _verdict(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    result = function(args.store, metric=args.metric, higher_is_better=args.higher_is_better, level=args.level,
                      rope=args.rope, seed=args.seed, format=args.format, output=args.output)
    _echo(result.render(args.format).rstrip("\n") if args.output is None else f"verdict written to {args.output}")
    return 0


def _replay(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    result = function(args.store, reduction_factor=args.reduction_factor, min_epochs=args.min_epochs, metric=args.metric,
                      format=args.format, output=args.output)
    _echo(result.render(args.format).rstrip("\n") if args.output is None else f"replay written to {args.output}")
    return 0


def _report(args: argparse.Namespace, function: Callable[..., Any]) -> int:
    result = function(args.store, args.output, run_files=args.run_files)
    _echo(result.render())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``mosaic``; returns the exit code (0 ok, 1 some runs failed, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # the declared mapping is what is called, so the two cannot drift
        return args.handler(args, getattr(mosaic, COMMANDS[args.command]))
    except MosaicError as exc:
        print(f"mosaic {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mosaic {args.command}: interrupted", file=sys.stderr)
        return 130


def _legacy(command: str) -> Callable[[], None]:
    def entry() -> None:
        sys.exit(main([command, *sys.argv[1:]]))

    entry.__name__ = f"legacy_{command}"
    entry.__doc__ = f"``mosaic_{command}``: the original's name for ``mosaic {command}``."
    return entry


legacy_generate = _legacy("generate")
legacy_run = _legacy("run")
legacy_status = _legacy("status")
legacy_pause = _legacy("pause")
legacy_resume = _legacy("resume")
legacy_rerun = _legacy("rerun")
legacy_savedb = _legacy("savedb")
legacy_rekey = _legacy("rekey")
legacy_plotloss = _legacy("plotloss")
legacy_metaplot = _legacy("metaplot")


def console_main() -> None:
    """Console-script wrapper around :func:`main`."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
