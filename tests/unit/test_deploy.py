"""The files in deploy/ and docs/deploy.md agree with the code: commands, ports, probes, names."""

from __future__ import annotations

import importlib
import ipaddress
import json
import re
import shlex
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from gateway import cli
from gateway.config import Settings, check_callback_secret, settings_table
from gateway.errors import ConfigError
from gateway.ratelimit import Network, networks

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
PORT = 5678
DEFAULTS = Settings()
ENV_NAME = re.compile(r"\bWAITGATE_[A-Z0-9_]*[A-Z0-9]\b")
VALID_CALLBACK_SECRET = "whsec_" + "A" * 44  # base64 of 33 bytes
SECRET_VARS = ("WAITGATE_DATABASE_URL", "WAITGATE_SECRET_KEYS", "WAITGATE_CALLBACK_SECRET")
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def config_vars() -> set[str]:
    """The names ``Settings.from_env`` looks up."""
    env = RecordingEnv()
    Settings.from_env(env)
    return env.read


def serve_params(argv: list[str]) -> dict[str, Any]:
    """The options of a ``waitgate serve ...`` command line, parsed by the real CLI."""
    assert len(argv) >= 2, argv
    assert Path(argv[0]).name == "waitgate", argv
    assert argv[1] == "serve", argv
    command = cli.main.commands["serve"]
    return dict(command.make_context("serve", list(argv[2:])).params)


def seconds(text: str) -> float:
    """``45s``, ``1m``, ``60`` as seconds (nginx, Caddy and compose durations)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    assert match, f"not a duration: {text!r}"
    factor = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]
    return float(match.group(1)) * factor


def size_bytes(text: str) -> int:
    """``16m`` (nginx), ``16MiB`` / ``16MB`` (Caddy) as bytes."""
    match = re.fullmatch(r"(\d+)\s*([kmg]i?b?)?", text.strip(), re.IGNORECASE)
    assert match, f"not a size: {text!r}"
    unit = (match.group(2) or "").lower()
    power = " kmg".index(unit[0]) if unit else 0
    base = 1000 if unit.endswith("b") and "i" not in unit else 1024
    return int(match.group(1)) * int(base**power)


def env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of an env file, comments left out."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        pending += raw.rstrip().removesuffix("\\") + " "
        if not raw.rstrip().endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            pending = ""
    return instructions


def docker_values(keyword: str) -> list[str]:
    """The arguments of every instruction ``keyword``, in order."""
    return [rest for key, rest in dockerfile() if key == keyword]


def exec_form(text: str) -> list[str]:
    """A JSON exec-form array (``["a", "b"]``)."""
    value = json.loads(text)
    assert isinstance(value, list), text
    assert all(isinstance(v, str) for v in value), text
    return value


def image_argv() -> tuple[list[str], list[str]]:
    """The image's ENTRYPOINT and CMD."""
    return exec_form(docker_values("ENTRYPOINT")[-1]), exec_form(docker_values("CMD")[-1])


def compose() -> dict[str, Any]:
    """deploy/compose.yaml."""
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def gateway_services() -> dict[str, dict[str, Any]]:
    """The compose services built from deploy/Dockerfile."""
    found = {}
    for name, service in compose()["services"].items():
        build = service.get("build")
        if isinstance(build, dict):
            target = (DEPLOY / build["context"] / build["dockerfile"]).resolve()
            if target == (DEPLOY / "Dockerfile").resolve():
                found[name] = service
    return found


def timeouts(environment: Mapping[str, Any]) -> float:
    """Response plus shutdown timeout that ``environment`` configures."""
    settings = Settings.from_env({k: str(v) for k, v in environment.items()})
    return settings.response_timeout_seconds + settings.shutdown_timeout_seconds


def systemd_unit() -> dict[str, list[str]]:
    """deploy/waitgate.service as ``Key -> values`` (keys may repeat)."""
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / "waitgate.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def nginx_directive(name: str) -> list[str]:
    """Arguments of every ``name ...;`` directive in deploy/nginx.conf."""
    text = (DEPLOY / "nginx.conf").read_text()
    return [m.strip() for m in re.findall(rf"^\s*{name}\s+([^;{{\n]+);", text, re.MULTILINE)]


def caddy_directive(name: str) -> list[str]:
    """Arguments of every ``name ...`` line in deploy/Caddyfile."""
    text = (DEPLOY / "Caddyfile").read_text()
    return [m.strip() for m in re.findall(rf"^\s*{name}\s+([^{{\n]+)", text, re.MULTILINE)]


def k8s() -> dict[str, dict[str, Any]]:
    """Every Kubernetes object under deploy/kubernetes by kind (one of each)."""
    objects: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["kind"] not in objects, f"two {doc['kind']} objects"
            objects[doc["kind"]] = doc
    return objects


def pod_spec() -> dict[str, Any]:
    """The Deployment's pod spec."""
    spec: dict[str, Any] = k8s()["Deployment"]["spec"]["template"]["spec"]
    return spec


# --- files parse, names exist -------------------------------------------------------------


def test_deploy_has_the_expected_yaml_files() -> None:
    names = {str(p.relative_to(DEPLOY)) for p in YAML_FILES}
    assert {"compose.yaml", "kubernetes/deployment.yaml", "kubernetes/pdb.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_file_parses_into_mappings(path: Path) -> None:
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs
    assert all(isinstance(doc, dict) and doc for doc in docs), path


def test_config_reads_exactly_the_variables_of_its_table() -> None:
    in_table = [entry.variable for entry in settings_table()]
    assert len(set(in_table)) == len(in_table)
    assert set(in_table) == config_vars()
    assert {"WAITGATE_DATABASE_URL", "WAITGATE_SECRET_KEYS", "WAITGATE_PUBLIC_URL"} <= set(in_table)


def test_the_table_defaults_are_the_settings_defaults() -> None:
    assert Settings.from_env({}) == DEFAULTS
    for entry in settings_table():
        assert getattr(DEFAULTS, entry.name) == entry.default, entry.name


@pytest.mark.parametrize(
    "path",
    [*sorted(p for p in DEPLOY.rglob("*") if p.is_file()), ROOT / "docs" / "deploy.md"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_waitgate_variable_named_is_read_by_config(path: Path) -> None:
    unknown = set(ENV_NAME.findall(path.read_text())) - config_vars()
    assert not unknown, f"{path.name} names variables config.py never reads: {sorted(unknown)}"


def test_console_script_waitgate_is_the_cli_group_with_serve() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, _, attr = project["scripts"]["waitgate"].partition(":")
    group = getattr(importlib.import_module(module), attr)
    assert isinstance(group, click.Group)
    assert "serve" in group.commands


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_entrypoint_and_cmd_are_waitgate_serve_on_all_interfaces() -> None:
    entrypoint, cmd = image_argv()
    assert entrypoint == ["waitgate"]
    params = serve_params(entrypoint + cmd)
    assert (params["host"], params["port"]) == ("0.0.0.0", PORT)
    assert docker_values("EXPOSE") == [str(PORT)]


def test_dockerfile_installs_the_project_with_postgres_from_the_copied_sources() -> None:
    assert docker_values("FROM") == ["python:3.11-slim"]
    copied = {src.rstrip("/") for args in docker_values("COPY") for src in args.split()[:-1]}
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.split("*")[0] for pattern in found}
    assert {"pyproject.toml", pyproject["project"]["readme"], "LICENSE", *packages} <= copied
    assert all((ROOT / src).exists() for src in copied), copied
    install = [r for r in docker_values("RUN") if "pip install" in r]
    assert any("--no-cache-dir" in r and "'.[postgres]'" in r for r in install), install


def test_dockerfile_runs_as_the_non_root_user_kubernetes_expects() -> None:
    user = docker_values("USER")[-1]
    assert user.split(":")[0] not in {"root", "0"}
    assert docker_values("WORKDIR")[-1] == "/var/lib/waitgate"
    assert user.split(":")[0] == str(pod_spec()["securityContext"]["runAsUser"])


def test_dockerfile_healthcheck_asks_healthz_with_python() -> None:
    (check,) = docker_values("HEALTHCHECK")
    argv = exec_form(check[check.index("CMD") + len("CMD") :].strip())
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "<healthcheck>", "exec")
    assert f"http://127.0.0.1:{PORT}/healthz" in argv[2]
    assert "urllib.request" in argv[2]


# --- compose, Caddy, env file ---------------------------------------------------------------


def test_compose_runs_two_gateway_replicas_of_waitgate_serve() -> None:
    gateways = gateway_services()
    assert len(gateways) == 2
    entrypoint, cmd = image_argv()
    for name, service in gateways.items():
        own_entry = service.get("entrypoint")
        if isinstance(own_entry, str):
            own_entry = shlex.split(own_entry)
        command = service.get("command", cmd if own_entry is None else [])
        if isinstance(command, str):
            command = shlex.split(command)
        params = serve_params((own_entry or entrypoint) + command)
        assert (params["host"], params["port"]) == ("0.0.0.0", PORT), name


def test_compose_gateways_are_ready_checked_and_outlive_held_callers_on_stop() -> None:
    for name, service in gateway_services().items():
        check = " ".join(service["healthcheck"]["test"])
        assert f"http://127.0.0.1:{PORT}/readyz" in check, name
        stop = seconds(service["stop_grace_period"])
        assert stop > timeouts(service.get("environment", {})), name
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]


def test_compose_dependencies_wait_for_healthy_services() -> None:
    services = compose()["services"]
    (postgres,) = [n for n, s in services.items() if str(s.get("image", "")).startswith("postgres")]
    assert services[postgres]["image"] == "postgres:15"
    for name in gateway_services():
        assert services[name]["depends_on"][postgres]["condition"] == "service_healthy"
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert rule["condition"] == "service_healthy", (name, dependency)
            assert "healthcheck" in services[dependency], dependency


def test_caddy_balances_exactly_the_gateway_replicas() -> None:
    services = compose()["services"]
    (proxy,) = [
        s
        for s in services.values()
        if "./Caddyfile:/etc/caddy/Caddyfile:ro" in s.get("volumes", [])
    ]
    upstreams = set(caddy_directive("reverse_proxy")[0].split())
    assert upstreams == {f"{name}:{PORT}" for name in gateway_services()}
    assert set(proxy["depends_on"]) == set(gateway_services())
    assert caddy_directive("health_uri") == ["/readyz"]


def test_caddy_allows_the_body_size_and_holds_long_enough() -> None:
    gateway_env = next(iter(gateway_services().values())).get("environment", {})
    settings = Settings.from_env({k: str(v) for k, v in gateway_env.items()})
    (max_size,) = caddy_directive("max_size")
    assert size_bytes(max_size) >= settings.max_body_bytes
    (header_timeout,) = caddy_directive("response_header_timeout")
    assert seconds(header_timeout) > settings.response_timeout_seconds


def test_env_example_feeds_every_service_and_is_refused_until_edited() -> None:
    services = compose()["services"]
    for name, service in services.items():
        files = service.get("env_file", [])
        for file in [files] if isinstance(files, str) else files:
            assert (DEPLOY / f"{file}.example").is_file(), name
    example = env_file(DEPLOY / "waitgate.env.example")
    url = urlsplit(example["WAITGATE_DATABASE_URL"])
    assert url.scheme == "postgresql"
    assert url.hostname in services
    assert url.password == example["POSTGRES_PASSWORD"]
    assert example["SITE_ADDRESS"] == urlsplit(example["WAITGATE_PUBLIC_URL"]).hostname
    with pytest.raises(ConfigError):
        Settings.from_env(example)
    edited = Settings.from_env({**example, "WAITGATE_CALLBACK_SECRET": VALID_CALLBACK_SECRET})
    assert edited.secret_keys
    assert edited.database_url.startswith("postgresql://")


# --- systemd and nginx ----------------------------------------------------------------------


def test_systemd_unit_serves_sqlite_on_loopback_behind_nginx() -> None:
    unit = systemd_unit()
    (exec_start,) = unit["ExecStart"]
    params = serve_params(shlex.split(exec_start))
    assert params["host"] == "127.0.0.1"
    assert nginx_directive("server") == [f"{params['host']}:{params['port']}"]
    environment = dict(v.partition("=")[::2] for v in unit["Environment"])
    database = Path(environment["WAITGATE_DATABASE_URL"].removeprefix("sqlite:///"))
    assert database.is_absolute()
    assert str(database.parent) in unit["ReadWritePaths"][0].split()
    assert unit["WorkingDirectory"] == [str(database.parent)]
    assert unit["User"] != ["root"]


def test_systemd_unit_waits_for_held_callers_before_killing() -> None:
    (stop,) = systemd_unit()["TimeoutStopSec"]
    assert seconds(stop) > timeouts({})


def test_nginx_passes_host_allows_the_body_size_and_holds_long_enough() -> None:
    assert "Host $host" in nginx_directive("proxy_set_header")
    (upstream,) = re.findall(r"^upstream\s+(\S+)", (DEPLOY / "nginx.conf").read_text(), re.M)
    assert nginx_directive("proxy_pass") == [f"http://{upstream}"]
    (body,) = nginx_directive("client_max_body_size")
    assert size_bytes(body) >= DEFAULTS.max_body_bytes
    (read_timeout,) = nginx_directive("proxy_read_timeout")
    assert seconds(read_timeout) > DEFAULTS.response_timeout_seconds


# --- Kubernetes -----------------------------------------------------------------------------


def container() -> dict[str, Any]:
    """The Deployment's one container."""
    (only,) = pod_spec()["containers"]
    assert isinstance(only, dict)
    return only


def test_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    resources = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    manifests = {p.name for p in K8S.glob("*.yaml")}
    assert resources == manifests - {"kustomization.yaml", "secret.example.yaml"}


def test_deployment_runs_two_replicas_of_waitgate_serve() -> None:
    objects = k8s()
    assert objects["Deployment"]["spec"]["replicas"] == 2
    assert "command" not in container(), "the image's ENTRYPOINT (waitgate) must stay"
    params = serve_params(image_argv()[0] + container()["args"])
    assert params["host"] == "0.0.0.0"
    assert [p["containerPort"] for p in container()["ports"]] == [params["port"]]


@pytest.mark.parametrize(
    ("probe", "path"),
    [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")],
)
def test_probes_ask_the_health_routes_on_the_container_port(probe: str, path: str) -> None:
    get = container()[probe]["httpGet"]
    assert get["path"] == path
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports.get(get["port"], get["port"]) == PORT


def test_pod_is_non_root_with_a_read_only_root_and_a_writable_tmp() -> None:
    spec = pod_spec()
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    (tmp,) = [m for m in container()["volumeMounts"] if m["mountPath"] == "/tmp"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[tmp["name"]]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container()["resources"][kind])


def test_secrets_come_from_the_secret_and_settings_from_the_config_map() -> None:
    objects = k8s()
    secret, config_map = objects["Secret"], objects["ConfigMap"]
    env = {e["name"]: e for e in container()["env"]}
    for name in SECRET_VARS:
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]
        assert ref.get("optional", False) is False
    assert not set(SECRET_VARS) & set(config_map["data"])
    (source,) = container()["envFrom"]
    assert source["configMapRef"]["name"] == config_map["metadata"]["name"]
    assert all(isinstance(v, str) for v in config_map["data"].values())
    values = {**config_map["data"], **secret["stringData"]}
    settings = Settings.from_env({**values, "WAITGATE_CALLBACK_SECRET": VALID_CALLBACK_SECRET})
    assert settings.database_url.startswith("postgresql://")
    with pytest.raises(ConfigError):
        check_callback_secret(secret["stringData"]["WAITGATE_CALLBACK_SECRET"])


def test_termination_grace_outlasts_pre_stop_held_callers_and_shutdown() -> None:
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = timeouts(k8s()["ConfigMap"]["data"]) + float(pre_stop[1])
    assert pod_spec()["terminationGracePeriodSeconds"] > needed


def test_service_budget_and_deployment_select_the_pods() -> None:
    objects = k8s()
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    selectors = [
        objects["Service"]["spec"]["selector"],
        objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
        objects["Deployment"]["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector
        assert selector.items() <= labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["minAvailable"] == 1
    (port,) = objects["Service"]["spec"]["ports"]
    assert port["targetPort"] in {p["name"] for p in container()["ports"]}


# --- trusted proxies: every shipped proxy's X-Forwarded-For is believed ----------------------


def trusted(environment: Mapping[str, Any]) -> tuple[Network, ...]:
    """The networks ``WAITGATE_TRUSTED_PROXIES`` names in ``environment`` (must be set)."""
    settings = Settings.from_env({k: str(v) for k, v in environment.items()})
    found = networks(settings.trusted_proxies)
    assert found, "WAITGATE_TRUSTED_PROXIES is not set"
    for network in found:  # only private ranges: an address in them may claim to be anyone
        assert network.is_private, network
        assert network.prefixlen >= (8 if network.version == 4 else 64), network
    return found


def covers(found: tuple[Network, ...], network: str) -> bool:
    """Whether every address of ``network`` is a trusted proxy."""
    inner = ipaddress.ip_network(network)
    return any(inner[0] in n and inner[-1] in n for n in found)


def test_systemd_gateway_believes_nginx_on_loopback() -> None:
    environment = dict(v.partition("=")[::2] for v in systemd_unit()["Environment"])
    found = trusted(environment)
    (upstream,) = nginx_directive("server")
    assert covers(found, upstream.rsplit(":", 1)[0] + "/32")  # nginx connects from there
    assert covers(found, "::1/128")
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in nginx_directive("proxy_set_header")


def test_compose_gateways_believe_caddy_on_their_own_network() -> None:
    project = compose()
    (subnet,) = [c["subnet"] for c in project["networks"]["default"]["ipam"]["config"]]
    for name, service in gateway_services().items():
        assert covers(trusted(service["environment"]), subnet), name
        assert "networks" not in service, name  # on the default network, with Caddy
        assert "ports" not in service, name  # nothing outside the network reaches them
    assert all("networks" not in s for s in project["services"].values())


def test_kubernetes_gateways_believe_the_pod_network() -> None:
    found = trusted(k8s()["ConfigMap"]["data"])
    assert covers(found, "10.244.0.0/16")  # a common pod CIDR (flannel); narrowing is documented


# --- docs/deploy.md -------------------------------------------------------------------------


def reference_rows() -> dict[str, str]:
    """The configuration table of docs/deploy.md: variable -> default cell."""
    rows = {}
    for line in (ROOT / "docs" / "deploy.md").read_text().splitlines():
        match = re.match(r"\|\s*`(WAITGATE_[A-Z0-9_]+)`\s*\|([^|]*)\|", line)
        if match:
            rows[match.group(1)] = match.group(2).strip()
    return rows


def test_docs_reference_lists_every_variable_config_reads() -> None:
    assert set(reference_rows()) == config_vars()


def test_docs_reference_defaults_are_the_real_defaults() -> None:
    literal = {
        name: cell.split("`")[1] for name, cell in reference_rows().items() if cell.startswith("`")
    }
    assert len(literal) >= 12
    for name, default in literal.items():
        assert Settings.from_env({name: default}) == Settings.from_env({}), name
