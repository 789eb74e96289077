"""deploy/ agrees with the code: every command line parses with the real CLI parser, ports match
the listen flags, probes hit real endpoints, capabilities and env var names are the ones used."""

from __future__ import annotations

import argparse
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from flamehouse import config
from flamehouse.cli import build_parser
from flamehouse.collector.service import HEALTH_PREFIX

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
K8S = DEPLOY / "k8s"


def k8s_docs() -> list[dict[str, Any]]:
    return [d for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def k8s(kind: str, name: str) -> dict[str, Any]:
    return next(d for d in k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name)


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def container(name: str) -> dict[str, Any]:
    kind = "DaemonSet" if name == "flamehouse-agent" else "Deployment"
    return k8s(kind, name)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def parse(argv: list[str]) -> argparse.Namespace:
    """``argv`` (without the program name) through the real parser; fails the test on a bad flag."""
    argv = [re.sub(r"\$\((\w+)\)", "x", a) for a in argv]  # Kubernetes $(VAR) expansion
    try:
        return build_parser().parse_args(argv)
    except SystemExit as err:
        pytest.fail(f"flamehouse {' '.join(argv)} does not parse (exit {err.code})")


def systemd_exec(unit: str) -> list[str]:
    text = (DEPLOY / "systemd" / unit).read_text()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    words = shlex.split(line.removeprefix("ExecStart="))
    assert words[0].endswith("/flamehouse")
    return words[1:]


def dockerfile_cmd() -> list[str]:
    text = (DEPLOY / "Dockerfile").read_text()
    (cmd,) = re.findall(r"^CMD (\[.*\])$", text, re.M)
    return yaml.safe_load(cmd)  # type: ignore[no-any-return]


def command_lines() -> dict[str, list[str]]:
    lines = {f"compose {n}": s["command"] for n, s in compose()["services"].items() if n != "clickhouse"}
    lines |= {f"k8s {n}": container(n)["args"] for n in ("flamehouse-collector", "flamehouse-ui", "flamehouse-agent")}
    lines |= {f"systemd {u}": systemd_exec(u) for u in ("flamehouse-agent.service", "flamehouse-server.service")}
    lines["Dockerfile CMD"] = dockerfile_cmd()
    return lines


@pytest.mark.parametrize("where", sorted(command_lines()))
def test_every_command_line_parses_with_the_real_parser(where: str) -> None:
    args = parse(command_lines()[where])
    assert args.command in {"server", "collector", "ui", "agent"}


def port_of(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def test_k8s_collector_ports_probes_and_service_agree() -> None:
    c = container("flamehouse-collector")
    args = parse(c["args"])
    port = port_of(args.grpc_listen)
    assert {p["containerPort"] for p in c["ports"]} == {port}
    for probe in (c["readinessProbe"], c["livenessProbe"]):
        assert probe["grpc"]["port"] == port  # the standard grpc.health.v1 service
    assert HEALTH_PREFIX == "/grpc.health.v1.Health/"
    (svc_port,) = k8s("Service", "flamehouse-collector")["spec"]["ports"]
    assert svc_port["port"] == port == 7070 and svc_port["targetPort"] == "grpc"


def http_routes() -> set[str]:
    source = (Path(__file__).resolve().parents[3] / "ui" / "app.py").read_text()
    return set(re.findall(r'@router\.get\("([^"]+)"', source))


def test_k8s_ui_ports_probes_and_service_agree() -> None:
    c = container("flamehouse-ui")
    port = port_of(parse(c["args"]).http_listen)
    assert [p["containerPort"] for p in c["ports"] if p["name"] == "http"] == [port]
    for probe in (c["readinessProbe"], c["livenessProbe"]):
        assert probe["httpGet"]["path"] in http_routes() and probe["httpGet"]["path"] == "/healthz"
    (svc_port,) = k8s("Service", "flamehouse-ui")["spec"]["ports"]
    assert svc_port["port"] == port == 7080


def test_k8s_agent_runs_on_the_host_with_ptrace_and_real_metrics() -> None:
    ds = k8s("DaemonSet", "flamehouse-agent")["spec"]["template"]
    c = ds["spec"]["containers"][0]
    assert ds["spec"]["hostPID"] is True
    assert "SYS_PTRACE" in c["securityContext"]["capabilities"]["add"]
    assert c["securityContext"]["runAsUser"] == 0
    args = parse(c["args"])
    port = port_of(args.metrics_listen)
    assert [p["containerPort"] for p in c["ports"] if p["name"] == "metrics"] == [port]
    assert c["readinessProbe"]["httpGet"]["path"] == "/metrics"
    assert ds["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    env = {e["name"]: e for e in c["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    assert "$(NODE_NAME)" in c["args"] and c["args"][c["args"].index("$(NODE_NAME)") - 1] == "--host"
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    podinfo = next(v for v in ds["spec"]["volumes"] if v["name"] == "podinfo")
    assert podinfo["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.labels"


def env_names() -> set[str]:
    names: set[str] = set()
    for n in ("flamehouse-collector", "flamehouse-ui", "flamehouse-agent"):
        names |= {e["name"] for e in container(n).get("env", [])}
    for s in compose()["services"].values():
        names |= set(s.get("environment", {}))
    for u in ("flamehouse-agent.service", "flamehouse-server.service"):
        names |= set(re.findall(r"^#? ?.*Environment=(\w+)=", (DEPLOY / "systemd" / u).read_text(), re.M))
    return {n for n in names if n.startswith("FLAMEHOUSE_")}


def test_every_flamehouse_env_var_is_one_the_code_reads() -> None:
    parser = build_parser()
    known = {config.CONFIG_ENV}
    for parsers in config.sections(parser).values():
        for p in parsers:
            known |= {config.ENV_PREFIX + k.upper() for k in config.options(p)}
    assert env_names(), "no FLAMEHOUSE_* variables found: the test reads the wrong files"
    assert env_names() <= known, sorted(env_names() - known)


def test_configmap_toml_is_a_valid_configuration() -> None:
    text = k8s("ConfigMap", "flamehouse-config")["data"]["flamehouse.toml"]
    layered = config.collect(build_parser(), tomllib.loads(text), "configmap", {})
    assert layered.values["agent"]["collector"].endswith(":7070")
    assert "password" not in text and "token =" not in text  # secrets live in the Secret


def test_secret_keys_cover_every_reference() -> None:
    keys = set(k8s("Secret", "flamehouse-secrets")["stringData"])
    refs: set[str] = set()
    for n in ("flamehouse-collector", "flamehouse-ui", "flamehouse-agent"):
        kind = "DaemonSet" if n == "flamehouse-agent" else "Deployment"
        spec = k8s(kind, n)["spec"]["template"]["spec"]
        for e in spec["containers"][0].get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.add(ref["key"])
        for v in spec.get("volumes", []):
            refs |= {i["key"] for i in v.get("secret", {}).get("items", [])}
    assert refs and refs <= keys


def test_compose_agent_collector_and_ui_agree_with_the_code() -> None:
    services = compose()["services"]
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    agent = services["agent"]
    assert agent["pid"] == "host" and "SYS_PTRACE" in agent["cap_add"]
    a = parse(agent["command"])
    assert port_of(a.collector) == port_of(parse(services["collector"]["command"]).grpc_listen)
    ui = parse(services["ui"]["command"])
    assert any(p.endswith(f":{port_of(ui.http_listen)}") for p in services["ui"]["ports"])
    assert "/healthz" in " ".join(services["ui"]["healthcheck"]["test"])
    assert "grpc_health" in " ".join(services["collector"]["healthcheck"]["test"])
    for name in ("ingest_tokens", "agent_token"):
        assert (DEPLOY / compose()["secrets"][name]["file"]).is_file()


def test_systemd_agent_has_ptrace_and_server_is_unprivileged() -> None:
    agent = (DEPLOY / "systemd" / "flamehouse-agent.service").read_text()
    assert re.search(r"^AmbientCapabilities=.*CAP_SYS_PTRACE", agent, re.M)
    server = (DEPLOY / "systemd" / "flamehouse-server.service").read_text()
    assert "DynamicUser=yes" in server
    args = parse(systemd_exec("flamehouse-server.service"))
    assert args.data_dir == "/var/lib/flamehouse" and "StateDirectory=flamehouse" in server


def test_dockerfile_base_user_and_ports() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    (user,) = re.findall(r"^USER (\S+)$", text, re.M)
    assert user not in ("root", "0")
    exposed = {int(p) for p in re.findall(r"^EXPOSE (.*)$", text, re.M)[0].split()}
    args = parse(dockerfile_cmd())
    assert {port_of(args.grpc_listen), port_of(args.http_listen)} <= exposed
    agent = parse(container("flamehouse-agent")["args"])
    assert port_of(agent.metrics_listen) in exposed


def test_a_renamed_flag_breaks_the_check() -> None:
    with pytest.raises(pytest.fail.Exception):
        parse(["collector", "--grpc-listn", "0.0.0.0:7070"])
