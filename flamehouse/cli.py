"""The ``flamehouse`` command: parses flags, sets up logging, wires objects.

Exit codes: 0 success; 1 runtime failure; 2 bad usage or input (what to fix is
printed); for ``flamehouse run``, the job's own exit code (128+N if a signal
N killed it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from flamehouse import __version__, config, logs
from flamehouse.agent.spool import default_spool_dir

log = logging.getLogger("flamehouse")

EXAMPLES = {
    "server": "flamehouse server --data-dir ./data --grpc-listen 127.0.0.1:7070 --http-listen 127.0.0.1:7080",
    "collector": "flamehouse collector --store http://clickhouse:8123 --grpc-listen 0.0.0.0:7070",
    "ui": "flamehouse ui --store http://clickhouse:8123 --http-listen 0.0.0.0:7080",
    "agent": "flamehouse agent --collector 127.0.0.1:7070 --match 'train\\.py' --service trainer",
    "run": "flamehouse run --collector 127.0.0.1:7070 --service trainer --label team=vision -- python train.py",
    "query": "flamehouse query top --server http://127.0.0.1:7080 --selector '{service=\"trainer\"}' --from now-15m",
    "demo": "flamehouse demo",
    "config": "flamehouse --config /etc/flamehouse/flamehouse.toml config show agent",
    "import": "flamehouse import profile.txt --service trainer --label team=vision --collector 127.0.0.1:7070",
}


def default_data_dir() -> str:
    return os.environ.get("FLAMEHOUSE_DATA_DIR") or str(Path.home() / ".local" / "share" / "flamehouse")


def _sub(subs: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str) -> argparse.ArgumentParser:
    return subs.add_parser(
        name,
        help=help_,
        description=help_,
        epilog=f"example:\n  {EXAMPLES[name.split(maxsplit=1)[0]]}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _store_args(p: argparse.ArgumentParser, embedded: bool = True) -> None:
    g = p.add_argument_group("store")
    if embedded:
        g.add_argument("--data-dir", default=default_data_dir(), help="data directory of the embedded store")
    g.add_argument(
        "--store",
        default=os.environ.get("FLAMEHOUSE_STORE", ""),
        help="ClickHouse server URL http(s)://host:8123 (default: embedded chDB under --data-dir)",
    )
    g.add_argument("--store-user", default=os.environ.get("FLAMEHOUSE_STORE_USER", "default"))
    g.add_argument(
        "--store-password", default=os.environ.get("FLAMEHOUSE_STORE_PASSWORD", ""), help="or FLAMEHOUSE_STORE_PASSWORD"
    )
    g.add_argument("--database", default="flamehouse", help="database holding the tables (default: flamehouse)")
    g.add_argument("--ttl-days", type=int, default=14, help="retention of raw samples in days (default: 14)")
    g.add_argument(
        "--rollup-ttl-days",
        type=int,
        default=90,
        help="retention of the per-minute rollup that answers long ranges, in days (default: 90)",
    )
    g.add_argument(
        "--cluster",
        default="",
        metavar="NAME",
        help="ClickHouse cluster: tables ON CLUSTER NAME, replicated *_local tables behind Distributed ones "
        "(default: single node)",
    )


def _listen_args(p: argparse.ArgumentParser, grpc: bool, http: bool) -> None:
    if grpc:
        p.add_argument("--grpc-listen", default="127.0.0.1:7070", help="gRPC ingest address (default: 127.0.0.1:7070)")
        p.add_argument("--token-file", help="file with accepted agent tokens, one per line (default: no auth)")
        p.add_argument("--tls-cert", help="PEM certificate chain: serve gRPC over TLS (with --tls-key)")
        p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    if http:
        p.add_argument("--http-listen", default="127.0.0.1:7080", help="HTTP UI/API address (default: 127.0.0.1:7080)")
        p.add_argument(
            "--api-token-file",
            help="file with read-only API tokens, one per line: /api/v1/* then needs 'Authorization: Bearer' "
            "(default: open); separate from the agents' --token-file",
        )


def _agent_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--collector",
        default=os.environ.get("FLAMEHOUSE_COLLECTOR", "127.0.0.1:7070"),
        help="collector gRPC address host:port (default: 127.0.0.1:7070, or FLAMEHOUSE_COLLECTOR)",
    )
    p.add_argument("--token", default=os.environ.get("FLAMEHOUSE_TOKEN", ""), help="bearer token (or FLAMEHOUSE_TOKEN)")
    p.add_argument(
        "--token-file",
        default=os.environ.get("FLAMEHOUSE_TOKEN_FILE"),
        help="file holding the bearer token (or FLAMEHOUSE_TOKEN_FILE); keeps it out of `ps`",
    )
    p.add_argument("--tls-ca", help="PEM CA certificate: talk to the collector over TLS, verifying it")
    d = p.add_argument_group("delivery")
    d.add_argument(
        "--spool-dir",
        default=os.environ.get("FLAMEHOUSE_SPOOL_DIR") or str(default_spool_dir()),
        help="where undelivered batches wait on disk, kept across restarts (default: %(default)s)",
    )
    d.add_argument("--max-memory-batches", type=int, default=100, help="batches kept in memory (default: 100)")
    d.add_argument(
        "--max-spool-bytes",
        type=int,
        default=256 * 1024 * 1024,
        help="bytes the spool may hold; the oldest beyond are dropped, 0 disables it (default: 256 MiB)",
    )
    p.add_argument("--service", default="", help="service label (default: the script's name)")
    p.add_argument("--job", default="", help="job label (default: SLURM_JOB_ID or TORCHELASTIC_RUN_ID)")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="extra label, repeatable")
    p.add_argument("--host", default="", help="host label (default: this host's name)")
    s = p.add_argument_group("sampling")
    s.add_argument("--rate", type=int, default=99, help="samples per second (default: 99)")
    s.add_argument("--window", type=int, default=10, help="seconds per py-spy run (default: 10)")
    s.add_argument("--native", action="store_true", help="also sample native frames")
    s.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    s.add_argument("--blocking", action="store_true", help="pause the target per sample (slower, exact)")
    s.add_argument("--idle", action="store_true", help="include idle threads (wall-clock profile)")
    s.add_argument("--rescan", type=float, default=2.0, help="seconds between scans for new processes")
    s.add_argument(
        "--gpu",
        default=os.environ.get("FLAMEHOUSE_GPU", "auto"),
        help="GPU metrics source: auto (NVML if a GPU is found), nvml, none, or replay:FILE "
        "(JSON lines or nvidia-smi CSV, followed as it grows) (default: auto)",
    )
    p.add_argument("--stats-file", help="write the agent's counters as JSON here on exit")
    p.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve the agent's counters for Prometheus at http://HOST:PORT/metrics (default: off)",
    )


def _query_args(q: argparse.ArgumentParser) -> None:
    """Flags shared by the ``query`` subcommands."""
    q.add_argument("--server", default=os.environ.get("FLAMEHOUSE_SERVER", "http://127.0.0.1:7080"))
    q.add_argument("--selector", default="{}", help='e.g. {service="trainer", rank!="0"}')
    q.add_argument("--from", dest="from_", default="now-1h", help="RFC 3339, unix seconds or now-15m")
    q.add_argument("--to", default="now")
    q.add_argument("--kind", choices=["cpu", "wall"], help="default: the selector's kind=, else cpu")
    q.add_argument(
        "--gpu-state",
        choices=["any", "busy", "idle", "none"],
        help="only samples taken while the process's GPUs were busy, idle or without data "
        "(default: the selector's gpu_state=, else any)",
    )
    q.add_argument(
        "--gpu-idle-below", type=float, default=10.0, help="SM utilisation %% under which a GPU is idle (default: 10)"
    )
    q.add_argument("--limit", type=int, default=20)
    q.add_argument("--json", action="store_true", help="print the API's JSON")


def _export_parser(qsubs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``flamehouse query export``: the selection as a file."""
    text = "write the selected samples as a speedscope, pprof or folded file"
    q = qsubs.add_parser(
        "export",
        help=text,
        description=text,
        epilog="example:\n  flamehouse query export --format pprof -o cpu.pb.gz --selector '{service=\"trainer\"}' "
        "--from now-1h\n  go tool pprof -top cpu.pb.gz",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--server", default=os.environ.get("FLAMEHOUSE_SERVER", "http://127.0.0.1:7080"))
    q.add_argument("--format", required=True, choices=["speedscope", "pprof", "folded"])
    q.add_argument("-o", "--output", required=True, metavar="FILE", help="file to write ('-' for standard output)")
    q.add_argument("--selector", default="{}", help='e.g. {service="trainer", rank!="0"}')
    q.add_argument("--from", dest="from_", default="now-1h", help="RFC 3339, unix seconds or now-15m")
    q.add_argument("--to", default="now")
    q.add_argument("--kind", choices=["cpu", "wall"], help="default: the selector's kind, else cpu")
    q.add_argument(
        "--gpu-state",
        choices=["any", "busy", "idle", "none"],
        help="only samples taken while the process's GPUs were busy, idle or without data (default: any)",
    )
    q.add_argument("--per-thread", action="store_true", help="split by thread instead of merging threads")
    q.add_argument("--rate", type=float, default=99.0, help="the agents' sampling rate, samples/s (default: 99)")


def _diff_parser(qsubs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``flamehouse query diff``: the functions whose share changed most between two selections."""
    text = "compare two selections (a job before and after a change): functions by change of self share"
    q = qsubs.add_parser(
        "diff",
        help=text,
        description=text,
        epilog="example:\n  flamehouse query diff --base '{service=\"trainer\"}' --base-from now-2d --base-to now-1d "
        "--comparison-from now-1h",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    q.add_argument("--server", default=os.environ.get("FLAMEHOUSE_SERVER", "http://127.0.0.1:7080"))
    q.add_argument("--base", default="{}", help="selector of the base side (default: everything)")
    q.add_argument("--base-from", default="now-1h", help="RFC 3339, unix seconds or now-15m (default: now-1h)")
    q.add_argument("--base-to", default="now")
    q.add_argument("--comparison", help="selector of the comparison side (default: --base)")
    q.add_argument("--comparison-from", default="now-1h", help="default: now-1h")
    q.add_argument("--comparison-to", default="now")
    q.add_argument("--kind", choices=["cpu", "wall"], help="both sides (default: the selectors' kind=, else cpu)")
    q.add_argument("--gpu-state", choices=["any", "busy", "idle", "none"], help="both sides (default: any)")
    q.add_argument("--limit", type=int, default=20, help="functions to show (default: 20)")
    q.add_argument("--json", action="store_true", help="print the API's JSON (tree included)")


def _import_parser(subs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``flamehouse import FILE``: py-spy raw / folded or speedscope files into the store."""
    p = _sub(subs, "import", "load a py-spy raw / folded stacks or speedscope file into the collector")
    p.add_argument("file", metavar="FILE", help="the profile (may be gzipped)")
    p.add_argument("--service", required=True, help="service label of the imported samples")
    p.add_argument("--job", default="", help="job label")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="extra label, repeatable")
    p.add_argument("--host", default="", help="host label (default: this host's name)")
    p.add_argument("--time", default="now", help="when the samples are stored: RFC 3339, unix seconds or now-1h")
    p.add_argument("--format", default="auto", choices=["auto", "raw", "speedscope"], help="default: detected")
    p.add_argument("--kind", default="cpu", choices=["cpu", "wall"], help="what a sample counts (default: cpu)")
    p.add_argument(
        "--rate", type=float, default=99.0, help="samples per second, to turn speedscope time weights into samples"
    )
    p.add_argument(
        "--collector",
        default=os.environ.get("FLAMEHOUSE_COLLECTOR", "127.0.0.1:7070"),
        help="collector gRPC address host:port (default: 127.0.0.1:7070, or FLAMEHOUSE_COLLECTOR)",
    )
    p.add_argument("--token", default=os.environ.get("FLAMEHOUSE_TOKEN", ""), help="bearer token (or FLAMEHOUSE_TOKEN)")
    p.add_argument("--token-file", default=os.environ.get("FLAMEHOUSE_TOKEN_FILE"), help="file holding the token")
    p.add_argument("--tls-ca", help="PEM CA certificate: talk to the collector over TLS, verifying it")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the collector (default: 30)")
    p.set_defaults(max_memory_batches=1, max_spool_bytes=0, spool_dir=None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flamehouse", description="Continuous CPU/GPU profiling for ML jobs.")
    parser.add_argument("--version", action="version", version=f"flamehouse {__version__}")
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error (default: info)")
    parser.add_argument("--log-format", default="text", choices=["text", "json"], help="log lines (default: text)")
    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        help="configuration file (or FLAMEHOUSE_CONFIG); FLAMEHOUSE_* variables override it, flags override both",
    )
    subs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _sub(subs, "server", "collector and HTTP API in one process (embedded store by default)")
    _store_args(p)
    _listen_args(p, grpc=True, http=True)
    p = _sub(subs, "collector", "gRPC ingest only")
    _store_args(p)
    _listen_args(p, grpc=True, http=False)
    p.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="serve the collector's counters for Prometheus at http://HOST:PORT/metrics (default: off; "
        "`flamehouse server` serves them on its HTTP port)",
    )
    p = _sub(subs, "ui", "HTTP API and pages only")
    _store_args(p)
    _listen_args(p, grpc=False, http=True)

    p = _sub(subs, "agent", "profile running processes on this host")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--pid", type=int, action="append", help="pid to profile (repeatable; its children too)")
    who.add_argument("--match", help="profile processes whose command line matches this regex")
    who.add_argument("--all-python", action="store_true", help="profile every Python process")
    _agent_args(p)

    p = _sub(subs, "run", "run a command and profile its whole process tree")
    _agent_args(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")

    p = _sub(subs, "query", "query a running server")
    qsubs = p.add_subparsers(dest="query", required=True, metavar="QUERY")
    q = qsubs.add_parser("top", help="top functions by self samples", description="top functions by self samples")
    _query_args(q)
    q = qsubs.add_parser(
        "lines",
        help="top source lines by self samples, with CPU and GPU-busy/idle seconds and their cost",
        description="top source lines by self samples, with CPU and GPU-busy/idle seconds and their cost",
        epilog="example:\n  flamehouse query lines --selector '{service=\"trainer\"}' --from now-1h "
        "--price-core-hour 0.05 --price-gpu-hour 2.5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _query_args(q)
    q.add_argument("--rate", type=float, default=99.0, help="the agents' sampling rate, samples/s (default: 99)")
    q.add_argument("--price-core-hour", type=float, help="price of one CPU core-hour: adds a CPU $ column")
    q.add_argument("--price-gpu-hour", type=float, help="price of one GPU-hour: adds a GPU-idle $ column")
    _export_parser(qsubs)
    _diff_parser(qsubs)
    _import_parser(subs)

    p = _sub(subs, "demo", "start an embedded server, profile a small training-like job, show its top functions")
    p.add_argument("--data-dir", help="keep the demo's data here (default: a temporary directory)")
    p.add_argument("--seconds", type=int, default=12, help="how long the demo job trains (default: 12)")
    p.add_argument("--grpc-listen", default="127.0.0.1:0", help="default: a free port")
    p.add_argument("--http-listen", default="127.0.0.1:0", help="default: a free port")
    p.add_argument(
        "--serve",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep serving after the demo (default: when run from a terminal)",
    )
    p = _sub(subs, "config", "show the effective configuration (file, FLAMEHOUSE_* variables, defaults)")
    csubs = p.add_subparsers(dest="config_action", required=True, metavar="ACTION")
    c = csubs.add_parser("show", help="print it as TOML, secrets masked", description="print it as TOML")
    c.add_argument("section", nargs="?", metavar="SUBCOMMAND", help="only this subcommand's table")
    c.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE.toml", help="configuration file")
    return parser


def setup_logging(level: str, fmt: str = "text") -> None:
    logs.setup(level, fmt)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args = config.parse(parser, words, config.environ())
    try:
        setup_logging(args.log_level, args.log_format)
    except ValueError as err:
        parser.error(str(err))
    if args.command == "config":
        try:
            print(config.show(build_parser(), words, config.environ(), args.section), end="")
        except config.ConfigError as err:
            print(f"flamehouse config: {err}", file=sys.stderr)
            return 2
        return 0
    from flamehouse import commands

    handler = {
        "server": commands.server,
        "collector": commands.server,
        "ui": commands.server,
        "agent": commands.agent,
        "run": commands.run,
        "query": commands.query,
        "demo": commands.demo,
        "import": commands.import_profile,
    }[args.command]
    try:
        return handler(args)
    except commands.UsageError as err:
        print(f"flamehouse {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
