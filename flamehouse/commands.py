"""What each ``flamehouse`` subcommand does: turn parsed flags into wired objects.

Kept apart from :mod:`flamehouse.cli` (flag definitions) so both stay small;
the logic itself lives in the components.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import signal
from pathlib import Path
from types import FrameType

from flamehouse import __version__
from flamehouse.agent import AgentError
from flamehouse.agent.batch import AgentIdentity
from flamehouse.agent.gpu import open_gpu_source
from flamehouse.agent.launcher import launch, supervise
from flamehouse.agent.metrics import MetricsServer, serve_metrics
from flamehouse.agent.profiler import Discover, Profiler
from flamehouse.agent.sampler import SamplerConfig, find_pyspy, pid_alive
from flamehouse.agent.shipper import Shipper, ShipperConfig
from flamehouse.agent.targets import LabelConfig, all_processes, matching, parse_label, tree
from flamehouse.collector import CollectorError
from flamehouse.collector.cluster import check_cluster_name
from flamehouse.collector.store import StoreConfig, embedded_dsn
from flamehouse.config import split_listen
from flamehouse.ui.client import ApiClient, ApiError
from flamehouse.ui.terminal import render_diff, render_lines, render_top

log = logging.getLogger("flamehouse")


class UsageError(Exception):
    """Bad flags or input: printed with exit code 2."""


def make_profiler(args: argparse.Namespace, discover: Discover) -> Profiler:
    """A Profiler configured from the agent flags shared by ``agent`` and ``run``."""
    try:
        extra = dict(parse_label(text) for text in args.label)
        sampler = SamplerConfig(
            pyspy=find_pyspy(),
            rate=args.rate,
            window=args.window,
            native=args.native,
            gil=args.gil,
            blocking=args.blocking,
            idle=args.idle,
        )
        sampler.validate()
    except (ValueError, AgentError) as err:
        raise UsageError(str(err)) from err
    if args.rescan <= 0:
        raise UsageError(f"--rescan must be positive, got {args.rescan}")
    if not re.match(r"^[^:\s]+:\d+$", args.collector):
        raise UsageError(f"--collector {args.collector!r} must look like 127.0.0.1:7070")
    labels = LabelConfig(service=args.service, job=args.job, extra=extra)
    try:
        gpu = open_gpu_source(args.gpu)
    except AgentError as err:
        raise UsageError(str(err)) from err
    shipper = Shipper(shipper_config(args))
    identity = AgentIdentity.local(args.host)
    profiler = Profiler(sampler, labels, discover, shipper, identity, rescan=args.rescan, gpu=gpu)
    args.metrics_server = agent_metrics(args, profiler)
    return profiler


def agent_metrics(args: argparse.Namespace, profiler: Profiler) -> MetricsServer | None:
    """Starts the ``--metrics-listen`` endpoint (None without the flag); closed by :func:`finish`."""
    listen = getattr(args, "metrics_listen", None)
    if not listen:
        return None
    try:
        host, port = split_listen(listen)
        return serve_metrics(profiler, host, port, __version__)
    except (ValueError, OSError) as err:
        raise UsageError(f"--metrics-listen {listen}: {err}") from err


def shipper_config(args: argparse.Namespace) -> ShipperConfig:
    """Delivery settings from the agent flags: token (flag, env or file), TLS CA, memory and spool bounds."""
    token = args.token
    if args.token_file:
        tokens = read_tokens(args.token_file)
        if len(tokens) != 1:
            raise UsageError(f"--token-file {args.token_file} must hold one token, found {len(tokens)}")
        (token,) = tokens
    if args.max_memory_batches < 1:
        raise UsageError(f"--max-memory-batches must be at least 1, got {args.max_memory_batches}")
    if args.max_spool_bytes < 0:
        raise UsageError(f"--max-spool-bytes must be 0 (no spool) or more, got {args.max_spool_bytes}")
    return ShipperConfig(
        target=args.collector,
        token=token,
        tls_ca=read_pem(args.tls_ca, "--tls-ca") if args.tls_ca else None,
        max_memory_batches=args.max_memory_batches,
        spool_dir=Path(args.spool_dir) if args.max_spool_bytes and args.spool_dir else None,
        max_spool_bytes=args.max_spool_bytes or 1,
    )


def read_pem(path: str, flag: str) -> bytes:
    """A PEM file's bytes; UsageError naming ``flag`` when unreadable or not PEM."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise UsageError(f"{flag} {path}: {err.strerror}") from err
    if b"-----BEGIN " not in data:
        raise UsageError(f"{flag} {path} is not a PEM file")
    return data


def finish(profiler: Profiler, args: argparse.Namespace) -> dict[str, int]:
    """Closes the shipper, logs the counters, writes ``--stats-file``; returns the counters."""
    stats = {**profiler.counters.snapshot(), **profiler.shipper.close()}
    if profiler.gpu is not None:
        stats |= {f"gpu_source_{k}": v for k, v in profiler.gpu.counters.snapshot().items()}
    log.info("agent stopped %s", " ".join(f"{k}={v}" for k, v in stats.items()))
    if args.stats_file:
        Path(args.stats_file).write_text(json.dumps(stats, indent=2) + "\n")
    metrics = getattr(args, "metrics_server", None)
    if metrics is not None:
        metrics.close()
    return stats


def agent(args: argparse.Namespace) -> int:
    """``flamehouse agent``: profile running processes until SIGINT/SIGTERM."""
    discover: Discover
    until = None
    if args.pid:
        pids = [p for p in args.pid if tree(p)]
        for pid in sorted(set(args.pid) - set(pids)):
            log.warning("cannot profile pid=%d: process does not exist", pid)
        if not pids:
            raise UsageError(f"none of the given pids exists: {' '.join(map(str, args.pid))}")
        discover = lambda: [proc for pid in pids for proc in tree(pid)]  # noqa: E731
        until = lambda: not any(pid_alive(pid) for pid in pids)  # noqa: E731  -- every target gone
    elif args.match:
        try:
            pattern = re.compile(args.match)
        except re.error as err:
            raise UsageError(f"--match {args.match!r} is not a valid regex: {err}") from err
        discover = lambda: matching(pattern)  # noqa: E731
    else:
        discover = all_processes
    profiler = make_profiler(args, discover)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping signal=%s", signal.Signals(signum).name)
        profiler.stop(timeout=0)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    profiler.run(until=until)
    profiler.stop()
    finish(profiler, args)
    return 0


def run(args: argparse.Namespace) -> int:
    """``flamehouse run -- CMD``: run CMD, profile its tree, exit with its code."""
    command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not command:
        raise UsageError("give the command to run after --, e.g. flamehouse run -- python train.py")
    holder: list[int] = []
    profiler = make_profiler(args, lambda: tree(holder[0]) if holder else [])
    try:
        job = launch(command)
    except OSError as err:
        finish(profiler, args)
        log.error("%s", err.strerror)
        return 127
    holder.append(job.pid)
    code = supervise(job, profiler)
    finish(profiler, args)
    return code


def store_config(args: argparse.Namespace) -> StoreConfig:
    """The StoreConfig from --store / --data-dir and friends."""
    for flag, days in (("--ttl-days", args.ttl_days), ("--rollup-ttl-days", args.rollup_ttl_days)):
        if days < 1:
            raise UsageError(f"{flag} must be at least 1, got {days}")
    dsn = args.store or embedded_dsn(args.data_dir)
    return StoreConfig(
        dsn=dsn, database=args.database, user=args.store_user, password=args.store_password, ttl_days=args.ttl_days,
        rollup_ttl_days=args.rollup_ttl_days,
    )  # fmt: skip


def read_tokens(path: str | None, flag: str = "--token-file") -> frozenset[str]:
    """Tokens from a token file: one per line, # comments allowed."""
    if not path:
        return frozenset()
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as err:
        raise UsageError(f"{flag} {path}: {err.strerror}") from err
    tokens = frozenset(t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#"))
    if not tokens:
        raise UsageError(f"{flag} {path} holds no token")
    return tokens


def server_tls(args: argparse.Namespace) -> tuple[bytes, bytes] | None:
    """(certificate chain, private key) PEMs from --tls-cert/--tls-key, or None for plain text."""
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if not cert and not key:
        return None
    if not (cert and key):
        raise UsageError("--tls-cert and --tls-key go together")
    return read_pem(cert, "--tls-cert"), read_pem(key, "--tls-key")


def server(args: argparse.Namespace) -> int:
    """``flamehouse server|collector|ui``: serve until SIGINT/SIGTERM."""
    from flamehouse import serve  # imported here: the agent's commands must not load the collector

    grpc_listen = getattr(args, "grpc_listen", None)
    http_listen = getattr(args, "http_listen", None)
    try:
        for listen in (grpc_listen, http_listen):
            if listen is not None:
                split_listen(listen)
    except ValueError as err:
        raise UsageError(str(err)) from err
    config = store_config(args)
    cluster = getattr(args, "cluster", "") or None
    if cluster is not None:
        try:
            check_cluster_name(cluster)
        except CollectorError as err:
            raise UsageError(str(err)) from err
        if config.embedded:
            raise UsageError("--cluster needs a ClickHouse server: give --store http(s)://host:8123")
    try:
        services = serve.start(
            config,
            cluster=cluster,
            grpc_listen=grpc_listen,
            http_listen=http_listen,
            tokens=read_tokens(getattr(args, "token_file", None)),
            tls=server_tls(args),
            api_tokens=read_tokens(getattr(args, "api_token_file", None), "--api-token-file"),
        )
    except (CollectorError, OSError) as err:
        log.error("cannot start: %s", err)
        return 1
    metrics_listen = getattr(args, "metrics_listen", None)
    if metrics_listen and http_listen is None:
        try:
            serve.serve_metrics(services, metrics_listen)
        except (ValueError, OSError) as err:
            services.stop(grace=1.0)
            raise UsageError(f"--metrics-listen {metrics_listen}: {err}") from err
    return serve.serve_forever(services)


def query(args: argparse.Namespace) -> int:
    """``flamehouse query top|lines``: print a table (or the JSON) from a running server."""
    if args.query == "export":
        return export(args)
    if args.query == "diff":
        return query_diff(args)
    if not 1 <= args.limit <= 10000:
        raise UsageError(f"--limit must be between 1 and 10000, got {args.limit}")
    client = ApiClient(args.server)
    common = {"gpu_state": args.gpu_state, "gpu_idle_below": args.gpu_idle_below}
    try:
        if args.query == "lines":
            core, gpu = _prices(args)
            result = client.lines(
                args.selector, args.from_, args.to, kind=args.kind, limit=args.limit, rate=args.rate, **common
            )
            text = render_lines(result, price_core_hour=core, price_gpu_hour=gpu)
        else:
            result = client.top(args.selector, args.from_, args.to, args.kind, args.limit, **common)
            text = render_top(result)
    except ApiError as err:
        if 400 <= err.status < 500:
            raise UsageError(err.message) from err
        log.error("server %s answered %d: %s", args.server, err.status, err.message)
        return 1
    print(json.dumps(result, indent=2) if args.json else text)
    return 0


def _prices(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """``(--price-core-hour, --price-gpu-hour)``, each None or checked finite and not negative."""
    for flag, value in (("--price-core-hour", args.price_core_hour), ("--price-gpu-hour", args.price_gpu_hour)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UsageError(f"{flag} must be a price of 0 or more, got {value}")
    return args.price_core_hour, args.price_gpu_hour


def query_diff(args: argparse.Namespace) -> int:
    """``flamehouse query diff``: the functions whose self share changed most, as a table (or the JSON)."""
    if not 1 <= args.limit <= 10000:
        raise UsageError(f"--limit must be between 1 and 10000, got {args.limit}")
    try:
        result = ApiClient(args.server).diff(
            args.base, (args.base_from, args.base_to), args.comparison, (args.comparison_from, args.comparison_to),
            kind=args.kind, gpu_state=args.gpu_state, limit=args.limit,
        )  # fmt: skip
    except ApiError as err:
        if 400 <= err.status < 500:
            raise UsageError(err.message) from err
        log.error("server %s answered %d: %s", args.server, err.status, err.message)
        return 1
    print(json.dumps(result, indent=2) if args.json else render_diff(result))
    return 0


def export(args: argparse.Namespace) -> int:
    """``flamehouse query export``: the selection as a file (see :mod:`flamehouse.exchange`)."""
    from flamehouse.exchange import export_file

    return export_file(args)


def import_profile(args: argparse.Namespace) -> int:
    """``flamehouse import FILE``: a profile file shipped through the collector (see :mod:`flamehouse.exchange`)."""
    from flamehouse.exchange import import_file

    return import_file(args)


def demo(args: argparse.Namespace) -> int:
    """``flamehouse demo``."""
    from flamehouse.demo import run_demo

    return run_demo(args)
