"""``flamehouse demo``: the whole product in one command.

Starts an embedded server (chDB under a temporary or given data dir) on free
loopback ports, runs the small training-like job of :mod:`flamehouse.workload`
under the agent exactly as ``flamehouse run`` would, then asks the HTTP API for
the job's top functions and prints them with the URLs to explore further.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from urllib.parse import quote

from flamehouse import serve
from flamehouse.agent.batch import AgentIdentity
from flamehouse.agent.launcher import launch, supervise
from flamehouse.agent.profiler import Profiler
from flamehouse.agent.sampler import SamplerConfig, find_pyspy
from flamehouse.agent.shipper import Shipper, ShipperConfig
from flamehouse.agent.targets import LabelConfig, tree
from flamehouse.collector.store import StoreConfig, embedded_dsn
from flamehouse.ui.client import ApiClient
from flamehouse.ui.terminal import render_top

log = logging.getLogger(__name__)

SERVICE = "demo-trainer"


def run_demo(args: argparse.Namespace) -> int:
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="flamehouse-demo-")
    services = serve.start(
        StoreConfig(dsn=embedded_dsn(data_dir)), grpc_listen=args.grpc_listen, http_listen=args.http_listen
    )
    try:
        url = f"http://127.0.0.1:{services.http_port}"
        print(f"flamehouse demo: server up (data in {data_dir}); profiling a {args.seconds}s training job…", flush=True)
        started = time.time()
        code = _profile_job(services.grpc_port, args.seconds)
        if code != 0:
            print(f"demo job failed with exit code {code}", file=sys.stderr)
            return 1
        selector = f'{{service="{SERVICE}"}}'
        result = ApiClient(url).top(selector, str(int(started) - 1), "now", "cpu", 15)
        print(render_top(result))
        print()
        print(f"Web UI:     {url}/?selector={quote(selector)}&from=now-15m")
        print(f"API:        {url}/api/v1/top?selector={selector}&from=now-15m")
        print(f"Flame tree: {url}/api/v1/flamegraph?selector={selector}&from=now-15m")
        print(f"API docs:   {url}/docs")
        print(f"CLI:        flamehouse query top --server {url} --selector '{selector}' --from now-15m")
        serving = args.serve if args.serve is not None else sys.stdin.isatty()
        if serving:
            print("Serving until Ctrl-C.", flush=True)
            return serve.serve_forever(services)
        return 0
    finally:
        services.stop()


def _profile_job(grpc_port: int, seconds: int) -> int:
    sampler = SamplerConfig(pyspy=find_pyspy(), window=2)
    shipper = Shipper(ShipperConfig(target=f"127.0.0.1:{grpc_port}"))
    holder: list[int] = []
    profiler = Profiler(
        sampler,
        LabelConfig(service=SERVICE, extra={"demo": "true"}),
        lambda: tree(holder[0]) if holder else [],
        shipper,
        AgentIdentity.local(),
        rescan=1.0,
    )
    job = launch([sys.executable, "-m", "flamehouse.workload", "--seconds", str(seconds)])
    holder.append(job.pid)
    code = supervise(job, profiler)
    stats = {**profiler.counters.snapshot(), **shipper.close()}
    print(
        f"job exited {code}: {stats['samples_taken']} samples taken in {stats['windows']} windows, "
        f"{stats['samples_acked']} stored, {stats['samples_dropped']} dropped",
        flush=True,
    )
    return code
