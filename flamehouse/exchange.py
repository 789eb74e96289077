"""``flamehouse query export`` and ``flamehouse import``: profiles out of and into flamehouse as files.

Wiring only: exports are rendered by the server (``GET /api/v1/export``, see
:mod:`flamehouse.ui.formats`) and fetched with :class:`~flamehouse.ui.client.ApiClient`;
imports are read by :mod:`flamehouse.agent.importer` and delivered like the
agent's own batches, so the collector validates them.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
import time
from pathlib import Path

from flamehouse.agent.batch import AgentIdentity
from flamehouse.agent.importer import ImportOptions, ProfileFileError, deliver, read_profile, to_batches
from flamehouse.agent.model import Kind
from flamehouse.agent.targets import parse_label
from flamehouse.collector import QueryError
from flamehouse.collector.timespec import parse_time
from flamehouse.commands import UsageError, shipper_config
from flamehouse.ui.client import ApiClient, ApiError

log = logging.getLogger("flamehouse")


def export_file(args: argparse.Namespace) -> int:
    """``flamehouse query export``: write the selection to ``-o FILE`` as speedscope, pprof or folded."""
    if not (math.isfinite(args.rate) and args.rate > 0):
        raise UsageError(f"--rate must be a positive number of samples per second, got {args.rate}")
    client = ApiClient(args.server)
    try:
        data = client.export(
            args.format,
            args.selector,
            args.from_,
            args.to,
            kind=args.kind,
            gpu_state=args.gpu_state,
            per_thread=args.per_thread,
            rate=args.rate,
        )
    except ApiError as err:
        if 400 <= err.status < 500:
            raise UsageError(err.message) from err
        log.error("server %s answered %d: %s", args.server, err.status, err.message)
        return 1
    if args.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    try:
        Path(args.output).write_bytes(data)
    except OSError as err:
        raise UsageError(f"-o {args.output}: {err.strerror or err}") from err
    print(f"wrote {args.format} profile to {args.output} ({len(data)} bytes)")
    return 0


def import_file(args: argparse.Namespace) -> int:
    """``flamehouse import FILE``: a py-spy raw / folded or speedscope file, shipped through the collector."""
    labels = _import_labels(args)
    if not (math.isfinite(args.rate) and args.rate > 0):
        raise UsageError(f"--rate must be a positive number of samples per second, got {args.rate}")
    if not re.match(r"^[^:\s]+:\d+$", args.collector):
        raise UsageError(f"--collector {args.collector!r} must look like 127.0.0.1:7070")
    try:
        stamp = int(parse_time(args.time, time.time()))
    except QueryError as err:
        raise UsageError(f"--time: {err}") from err
    try:
        profile = read_profile(Path(args.file), args.format, args.rate)
        options = ImportOptions(labels, stamp, Kind(args.kind), cmdline=f"flamehouse import {Path(args.file).name}")
        batches = to_batches(profile, options, AgentIdentity.local(args.host))
    except ProfileFileError as err:
        raise UsageError(str(err)) from err
    if not profile.stacks:
        raise UsageError(f"{args.file} holds no samples with stack frames")
    counters = deliver(batches, shipper_config(args), timeout=args.timeout)
    if counters["samples_acked"] != profile.samples:
        log.error(
            "collector %s stored %d of %d samples (dropped %d): see the messages above",
            args.collector,
            counters["samples_acked"],
            profile.samples,
            counters["samples_dropped"],
        )
        return 1
    skipped = f", {profile.skipped} without frames left out" if profile.skipped else ""
    print(
        f"imported {profile.samples} samples ({len(profile.stacks)} stacks{skipped}) from {args.file} "
        f"as {profile.format}, service={args.service}, at {stamp}"
    )
    return 0


def _import_labels(args: argparse.Namespace) -> dict[str, str]:
    """Process labels of an import: --service, --job and every --label."""
    try:
        labels = dict(parse_label(text) for text in args.label)
    except ValueError as err:
        raise UsageError(str(err)) from err
    for name in ("service", "job"):
        if name in labels:
            raise UsageError(f"--label {name}=...: use --{name} instead")
    labels["service"] = args.service
    if args.job:
        labels["job"] = args.job
    if not args.service:
        raise UsageError("--service must not be empty")
    return labels
