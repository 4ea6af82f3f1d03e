"""The deployment examples hold together: manifests parse, and every rqpool option, environment variable,
config and cross-reference they use exists. No cluster is needed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError

from django_rq_pool.config.loader import parse_config
from django_rq_pool.config.queue_lists import parse_memory
from django_rq_pool.config.yaml_file import parse_yaml
from django_rq_pool.management.commands.rqpool import Command

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
PACKAGE_TEXT = "\n".join(p.read_text() for p in (ROOT / "django_rq_pool").rglob("*.py"))
CONFIGURATION_DOC = (ROOT / "docs" / "configuration.md").read_text()
APP_VARIABLES = {"DJANGO_SETTINGS_MODULE", "REDIS_URL", "REDIS_ADDRESS"}  # read by Django or KEDA, not by rqpool
K8S_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def documents() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in MANIFESTS:
        with path.open() as handle:
            found.extend((path, doc) for doc in yaml.safe_load_all(handle) if doc is not None)
    return found


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def rqpool_containers() -> list[dict[str, Any]]:
    containers = []
    for deployment in of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            if "rqpool" in container.get("command", []):
                containers.append(container)
    return containers


def rqpool_arguments(command: list[str]) -> dict[str, Any]:
    """Parse the arguments after ``rqpool`` with the command's own parser: an unknown option fails."""
    parser = Command().create_parser("manage.py", "rqpool")
    try:
        return vars(parser.parse_args(command[command.index("rqpool") + 1 :]))
    except CommandError as exc:
        raise AssertionError(f"{command}: {exc}") from None


def check_variable(name: str) -> None:
    if name in APP_VARIABLES:
        return
    assert name.startswith("RQ_POOL_"), f"{name}: not an rqpool variable; add it to APP_VARIABLES if the app reads it"
    assert f'"{name}"' in PACKAGE_TEXT, f"${name} is not read anywhere in django_rq_pool"
    assert f"`{name}`" in CONFIGURATION_DOC, f"${name} is not documented in docs/configuration.md"


def kubernetes_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMGT]i)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * K8S_UNITS[unit]


def test_every_manifest_parses_and_names_its_objects():
    assert [p.name for p in MANIFESTS] == ["deployment.yaml", "keda-scaledobject.yaml"]
    kinds = sorted(doc["kind"] for _, doc in documents())
    assert kinds == ["ConfigMap", "Deployment", "ScaledObject"]
    for path, doc in documents():
        assert doc.get("apiVersion") and doc["metadata"].get("name"), path


def test_every_rqpool_option_and_variable_exists():
    (container,) = rqpool_containers()
    arguments = rqpool_arguments(container["command"])
    assert arguments["kill_timeout"] == 10
    for variable in container["env"]:
        check_variable(variable["name"])


def test_the_configmap_config_is_a_valid_autoscaled_plan():
    (container,) = rqpool_containers()
    env = {v["name"]: v.get("value") for v in container["env"]}
    config_path = Path(env["RQ_POOL_CONFIG"])
    (mount,) = [m for m in container["volumeMounts"] if config_path.parent == Path(m["mountPath"])]
    (configmap,) = of_kind("ConfigMap")
    assert mount["name"] in [v["name"] for v in of_kind("Deployment")[0]["spec"]["template"]["spec"]["volumes"]]
    text = configmap["data"][config_path.name]
    plan = parse_config(parse_yaml(text, config_path.name), config_path.name)
    assert plan.groups and all(group.autoscale is not None for group in plan.groups)


def test_grace_period_covers_the_graceful_timeout_and_the_kill_timeout():
    (deployment,) = of_kind("Deployment")
    (container,) = rqpool_containers()
    env = {v["name"]: v.get("value") for v in container["env"]}
    assert env["RQ_POOL_TERM"] == "graceful-wait"
    arguments = rqpool_arguments(container["command"])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(env["RQ_POOL_GRACEFUL_TIMEOUT"]) + arguments["kill_timeout"]


def test_the_memory_budget_fits_in_the_container_limit():
    (container,) = rqpool_containers()
    budget = parse_memory(rqpool_arguments(container["command"])["max_memory"], "--max-memory", None, None)
    assert budget < kubernetes_bytes(container["resources"]["limits"]["memory"])


def test_keda_scales_the_deployment_on_the_queues_the_pool_serves():
    (scaled,) = of_kind("ScaledObject")
    (deployment,) = of_kind("Deployment")
    (configmap,) = of_kind("ConfigMap")
    (container,) = rqpool_containers()
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    plan = parse_config(parse_yaml(configmap["data"]["rq-pool.yml"], "rq-pool.yml"), "rq-pool.yml")
    served = {queue for group in plan.groups for queue in group.queues}
    env_names = {v["name"] for v in container["env"]}
    watched = set()
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "redis"
        metadata = trigger["metadata"]
        assert metadata["addressFromEnv"] in env_names
        assert int(metadata["listLength"]) > 0
        prefix, _, queue = metadata["listName"].rpartition(":")
        assert prefix == "rq:queue" and queue in served, metadata["listName"]
        watched.add(queue)
    assert watched == served


@pytest.mark.parametrize(
    ("path", "pattern"),
    [("Procfile", r"^worker: (.*)$"), ("rqpool.service", r"^ExecStart=(.*)$"), ("docker.md", r"(mysite:latest .*)$")],
)
def test_other_deploy_examples_use_existing_options_and_variables(path: str, pattern: str):
    text = (DEPLOY / path).read_text()
    (line,) = re.findall(pattern, text, re.MULTILINE)
    rqpool_arguments(shlex.split(line))
    for name in re.findall(r"\b(RQ_POOL_[A-Z_]+)", text):
        check_variable(name)


def test_docs_point_at_the_kubernetes_directory():
    operations = (ROOT / "docs" / "operations.md").read_text()
    assert "deploy/kubernetes.yaml" not in operations
    for path in MANIFESTS:
        assert f"deploy/kubernetes/{path.name}" in (ROOT / "docs" / "autoscaling.md").read_text()
