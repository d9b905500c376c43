"""docker-compose.yml and the Dockerfile, checked offline (no Docker engine runs here):
structure, safety, and that every command and variable is one newsloom really has."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from typer.main import get_command

from newsloom import metrics  # noqa: F401 - registers the metrics the dashboard names
from newsloom.cli import app
from newsloom.settings import Settings, env_names

ROOT = Path(__file__).parent.parent
APP_SERVICES = ("init-db", "scheduler", "fetcher", "processor", "deliverer")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def parse_all(argv: list[str]) -> str | None:
    """Why `newsloom ARGV` would not run, or None: parsed by the real command line."""
    # Typer carries its own copy of click, so go by its interface, not by click's classes.
    command, ctx, args = get_command(app), None, list(argv)
    while hasattr(command, "get_command"):
        ctx = command.context_class(command, info_name=command.name or "newsloom", parent=ctx)
        if not args:
            return "no subcommand"
        name, args = args[0], args[1:]
        command = command.get_command(ctx, name)
        if command is None:
            return f"no command {name!r}"
    try:
        command.make_context(command.name, args, parent=ctx, resilient_parsing=False)
    except Exception as exc:
        if hasattr(exc, "format_message"):
            return exc.format_message()
        raise
    return None


def setting_names() -> set[str]:
    return {env for name, field in Settings.model_fields.items() for env in env_names(name, field)}


def unknown_variables(environment: dict) -> set[str]:
    return set(environment) - setting_names()


MONITORING = ("prometheus", "grafana", "flower")


def test_services_and_volumes(compose):
    assert set(compose["services"]) == {"postgres", "redis", *APP_SERVICES, *MONITORING, "web"}
    assert set(compose["volumes"]) == {"pgdata", "redisdata", "promdata"}
    assert "pgdata:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]
    assert "redisdata:/data" in compose["services"]["redis"]["volumes"]


def test_ports_only_on_localhost(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"


def test_postgres_gets_the_schema_and_redis_persists(compose):
    volumes = compose["services"]["postgres"]["volumes"]
    assert any(v.startswith("./schema.sql:/docker-entrypoint-initdb.d/") for v in volumes)
    command = compose["services"]["redis"]["command"]
    assert "--appendonly" in command and command[command.index("--appendonly") + 1] == "yes"


def test_healthchecks(compose):
    for name in ("postgres", "redis", "scheduler", "fetcher", "processor", "deliverer"):
        assert compose["services"][name]["healthcheck"]["test"], name
    assert compose["services"]["scheduler"]["healthcheck"]["test"][1:] == ["newsloom", "health"]
    for name in ("scheduler", "fetcher", "processor", "deliverer"):
        depends = compose["services"][name]["depends_on"]
        assert depends["init-db"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"


def test_feeds_file_mounted_into_the_scheduler(compose):
    scheduler = compose["services"]["scheduler"]
    mount = "./feeds.toml:/app/feeds.toml:ro"
    assert mount in scheduler["volumes"]
    assert scheduler["environment"]["NEWSLOOM_FEEDS"] == "/app/feeds.toml"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_commands_are_real_subcommands(compose, service):
    command = compose["services"][service]["command"]
    argv = shlex.split(command) if isinstance(command, str) else command
    assert parse_all(argv) is None
    healthcheck = compose["services"][service].get("healthcheck", {})
    if not healthcheck.get("disable"):
        assert parse_all(healthcheck["test"][2:]) is None


def test_worker_services_split_the_queues(compose):
    queues = {compose["services"][s]["command"][-1] for s in ("fetcher", "processor", "deliverer")}
    assert queues == {"fetch", "process", "deliver"}


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["worker", "--queues"],
        ["worker", "--pool", "x"],
        ["dlq", "bogus"],
        ["worker", "--queues", "frob"],
        ["worker", "-Q", "fetch,nope"],
        ["worker", "--queues=,"],
    ],
)
def test_checker_rejects_what_newsloom_rejects(argv):
    assert parse_all(argv) is not None


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_environment_names_are_settings(compose, service):
    environment = compose["services"][service]["environment"]
    assert unknown_variables(environment) == set()
    assert environment["DATABASE_URL"].startswith("postgresql://")


def test_unknown_variable_is_caught():
    assert unknown_variables({"NEWSLOOM_NOPE": "1", "REDIS_URL": "x"}) == {"NEWSLOOM_NOPE"}


def test_defaults_in_compose_match_the_settings(compose):
    environment = compose["services"]["scheduler"]["environment"]
    for name in ("user_agent", "log_format", "allow_private_networks"):
        env = env_names(name, Settings.model_fields[name])[0]
        default = re.fullmatch(r"\$\{" + env + r":-(.*)\}", environment[env]).group(1)
        # What the service gets when the variable is unset (an empty user agent: the default).
        applied = getattr(Settings(**{name: default}), name)
        assert str(applied).lower() == str(Settings.model_fields[name].default).lower(), env


def test_dockerfile_installs_the_official_model():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "en_core_web_sm-3.8.0-py3-none-any.whl" in dockerfile
    assert "NEWSLOOM_SPACY_MODEL=en_core_web_sm\n" in dockerfile
    assert 'ENTRYPOINT ["newsloom"]' in dockerfile
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert re.search(r"^USER (?!root)", dockerfile, re.MULTILINE)
    for path in re.findall(r"^COPY (\S+)", dockerfile, re.MULTILINE):
        assert (ROOT / path).exists(), f"Dockerfile copies {path}, which is missing"


def test_monitoring_is_an_optional_profile(compose):
    for name in MONITORING:
        assert compose["services"][name]["profiles"] == ["monitoring"], name
    for name in ("postgres", "redis", *APP_SERVICES):
        assert "profiles" not in compose["services"][name], name


def test_prometheus_scrapes_every_app_service_on_the_metrics_port(compose):
    config = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    [discovery] = job["dns_sd_configs"]
    assert set(discovery["names"]) == {"scheduler", "fetcher", "processor", "deliverer"}
    for name in discovery["names"]:
        port = compose["services"][name]["environment"]["NEWSLOOM_METRICS_PORT"]
        assert int(port) == discovery["port"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_dashboard_queries_real_metrics():
    dashboard = json.loads(
        (ROOT / "monitoring" / "grafana" / "dashboards" / "newsloom.json").read_text()
    )
    # Importing newsloom.metrics registered its metrics; the queue depth is collected at scrape.
    names = {family.name for family in REGISTRY.collect()} | {"newsloom_queue_depth"}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = set(re.findall(r"newsloom_[a-z_]+", target["expr"]))
            used = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in used}
            assert used and used <= names, (panel["title"], used - names)


def test_web_serves_on_localhost_with_keys_from_the_environment(compose):
    web = compose["services"]["web"]
    assert web["profiles"] == ["web"]
    assert parse_all(web["command"]) is None
    assert unknown_variables(web["environment"]) == set()
    assert web["environment"]["NEWSLOOM_API_KEYS"] == "${NEWSLOOM_API_KEYS:-}"
    port = web["environment"]["NEWSLOOM_HTTP_PORT"]
    assert web["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"127.0.0.1:{port}/healthz" in web["healthcheck"]["test"][-1]
