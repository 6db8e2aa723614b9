"""deploy/kubernetes/: schema-valid for Kubernetes (kubernetes-validate, strict, offline schemas) and wired
together the way a cluster needs it: probes reach agw's admin port, the pod is locked down, the drain fits
in the grace period, selectors select, and the ConfigMap holds the guide's JWT policy."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.httpbin import HttpbinServer
from tests.support.idp import MockIdp
from tests.support.ports import free_port
from tests.support.proxy import run_agw

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
DOCKERFILE = REPO / "Dockerfile"
KUSTOMIZATION = "kustomization.yaml"
# agw's own default for --drain-timeout (seconds), used when the Deployment does not pass the flag.
DEFAULT_DRAIN_SECONDS = 15
# The oldest Kubernetes these manifests are meant for (autoscaling/v2 and policy/v1 are GA well before it),
# and the newest that kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.29", "latest"]
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def manifest_files() -> list[Path]:
    return sorted(p for p in MANIFESTS.glob("*.yaml") if p.name != KUSTOMIZATION)


def load_resources() -> dict[str, dict[str, Any]]:
    """Every resource in deploy/kubernetes, keyed by kind (one of each kind is expected)."""
    resources: dict[str, dict[str, Any]] = {}
    for path in manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            if document is None:
                continue
            assert document["kind"] not in resources, f"second {document['kind']} in {path.name}"
            resources[document["kind"]] = document
    return resources


@pytest.fixture(scope="module")
def resources() -> dict[str, dict[str, Any]]:
    return load_resources()


@pytest.fixture(scope="module")
def pod_spec(resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return resources["Deployment"]["spec"]["template"]["spec"]


@pytest.fixture(scope="module")
def agw_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod_spec["containers"] if c["name"] == "agw")


def embedded_config(resources: dict[str, dict[str, Any]]) -> str:
    return resources["ConfigMap"]["data"]["config.yaml"]


def option(args: list[str], flag: str) -> str | None:
    """The value after `flag` in an argument list (or of `flag=value`)."""
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def container_args(container: dict[str, Any]) -> list[str]:
    """What agw is started with: the Deployment's args, or else the image's CMD."""
    if "args" in container:
        return [str(a) for a in container["args"]]
    cmd = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD ")][-1]
    return yaml.safe_load(cmd[len("CMD "):])


def named_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


# --- schema validation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_passes_kubernetes_validate_strict(version: str) -> None:
    files = [str(p) for p in manifest_files()]
    assert len(files) >= 6
    version_args = [] if version == "latest" else ["--kubernetes-version", version]
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", *version_args, *files],
        capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Every resource was checked against a schema: a kind without one only warns, which would hide it.
    assert "WARN" not in output and "ERROR" not in output, output
    assert output.count("passed for resource") == sum(1 for _ in load_resources()), output


def test_strict_validation_catches_a_misspelled_field(tmp_path: Path) -> None:
    """Proves the run above is strict: a typo in a security setting must not pass silently."""
    broken = (MANIFESTS / "deployment.yaml").read_text().replace(
        "readOnlyRootFilesystem", "readOnlyRootFileSystem")
    path = tmp_path / "deployment.yaml"
    path.write_text(broken)
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "readOnlyRootFileSystem" in result.stdout + result.stderr


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((MANIFESTS / KUSTOMIZATION).read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in manifest_files())


def test_all_resources_share_one_namespace(resources: dict[str, dict[str, Any]]) -> None:
    namespaces = {kind: r["metadata"].get("namespace") for kind, r in resources.items() if kind != "Namespace"}
    assert set(namespaces.values()) == {resources["Namespace"]["metadata"]["name"]}, namespaces


# --- the Deployment -------------------------------------------------------------------------------------

def test_probes_hit_health_and_readiness_on_the_admin_port(agw_container: dict[str, Any]) -> None:
    liveness = agw_container["livenessProbe"]["httpGet"]
    readiness = agw_container["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz"
    assert readiness["path"] == "/readyz"
    assert named_port(agw_container, liveness["port"]) == 15000
    assert named_port(agw_container, readiness["port"]) == 15000
    # The admin listener must listen where the kubelet probes: on the pod's address, port 15000.
    assert option(container_args(agw_container), "--admin") == "0.0.0.0:15000"


def test_pod_runs_non_root_with_a_read_only_root_filesystem(pod_spec: dict[str, Any],
                                                             agw_container: dict[str, Any]) -> None:
    pod_security = pod_spec.get("securityContext", {})
    security = agw_container["securityContext"]
    assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    # The uid the pod asks for is the image's own user.
    image_user = [line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("USER ")]
    run_as_user = security.get("runAsUser", pod_security.get("runAsUser"))
    assert run_as_user is not None and run_as_user != 0
    assert image_user[-1].split(":")[0] == str(run_as_user)


def test_resources_have_requests_within_limits(agw_container: dict[str, Any]) -> None:
    def cpu(value: str | int) -> float:
        text = str(value)
        return float(text[:-1]) / 1000 if text.endswith("m") else float(text)

    def memory(value: str) -> int:
        units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
        return int(value[:-2]) * units[value[-2:]] if value[-2:] in units else int(value)

    requests = agw_container["resources"]["requests"]
    limits = agw_container["resources"]["limits"]
    assert cpu(requests["cpu"]) <= cpu(limits["cpu"])
    assert memory(requests["memory"]) <= memory(limits["memory"])


def test_config_comes_from_the_configmap_at_etc_agw(resources: dict[str, dict[str, Any]],
                                                     pod_spec: dict[str, Any],
                                                     agw_container: dict[str, Any]) -> None:
    mount = next(m for m in agw_container["volumeMounts"] if m["mountPath"] == "/etc/agw")
    assert mount.get("readOnly") is True
    # No subPath: a subPath mount would never see ConfigMap updates.
    assert "subPath" not in mount
    volume = next(v for v in pod_spec["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == resources["ConfigMap"]["metadata"]["name"]
    assert "config.yaml" in resources["ConfigMap"]["data"]
    assert option(container_args(agw_container), "-f") == "/etc/agw/config.yaml"


def test_drain_fits_in_the_termination_grace_period(pod_spec: dict[str, Any],
                                                    agw_container: dict[str, Any]) -> None:
    pre_stop = agw_container["lifecycle"]["preStop"]
    if "sleep" in pre_stop:
        pause = int(pre_stop["sleep"]["seconds"])
    else:
        command = pre_stop["exec"]["command"]
        assert command[0] == "sleep", command
        pause = int(command[1])
    # A pause, so endpoints drop the pod before agw stops accepting; short, so the drain keeps its time.
    assert 1 <= pause <= 15
    drain = float(option(container_args(agw_container), "--drain-timeout") or DEFAULT_DRAIN_SECONDS)
    assert pod_spec["terminationGracePeriodSeconds"] > pause + drain


def test_rollout_and_disruptions_keep_capacity(resources: dict[str, dict[str, Any]]) -> None:
    deployment = resources["Deployment"]
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]

    def selects_pods(selector: dict[str, str]) -> bool:
        return all(template_labels.get(k) == v for k, v in selector.items())

    assert selects_pods(deployment["spec"]["selector"]["matchLabels"])
    assert selects_pods(resources["Service"]["spec"]["selector"])
    assert selects_pods(resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"])
    hpa = resources["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    cpu_targets = [m for m in hpa["spec"]["metrics"] if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu_targets and cpu_targets[0]["resource"]["target"]["type"] == "Utilization"
    # A node drain may never evict every replica at once.
    pdb = resources["PodDisruptionBudget"]
    assert pdb["apiVersion"] == "policy/v1"
    assert hpa["spec"]["minReplicas"] >= 2
    assert int(pdb["spec"]["maxUnavailable"]) < hpa["spec"]["minReplicas"]


def test_service_exposes_http_and_admin(resources: dict[str, dict[str, Any]],
                                        agw_container: dict[str, Any]) -> None:
    ports = {p["name"]: p for p in resources["Service"]["spec"]["ports"]}
    assert ports["http"]["port"] == 8080
    assert named_port(agw_container, ports["http"]["targetPort"]) == 8080
    assert ports["admin"]["port"] == 15000
    assert named_port(agw_container, ports["admin"]["targetPort"]) == 15000


# --- the config in the ConfigMap ------------------------------------------------------------------------

def test_configmap_holds_the_guides_jwt_policy(resources: dict[str, dict[str, Any]],
                                               agw_container: dict[str, Any]) -> None:
    documents = [d for d in yaml.safe_load_all(embedded_config(resources)) if d]
    by_kind = {d["kind"]: d for d in documents}
    assert {"Gateway", "HTTPRoute", "AgentgatewayPolicy"} <= set(by_kind)

    policy = by_kind["AgentgatewayPolicy"]
    assert policy["apiVersion"] == "agentgateway.dev/v1alpha1"
    jwt = policy["spec"]["traffic"]["jwtAuthentication"]
    assert jwt["mode"] == "Strict"
    provider = jwt["providers"][0]
    assert provider["issuer"] == "${KEYCLOAK_ISSUER}"
    remote = provider["jwks"]["remote"]
    assert remote["jwksPath"] == "${KEYCLOAK_JWKS_PATH}"
    assert remote["backendRef"]["kind"] == "Service" and remote["backendRef"]["name"] == "keycloak"

    gateway = by_kind["Gateway"]
    target = policy["spec"]["targetRefs"][0]
    assert (target["kind"], target["name"]) == ("Gateway", gateway["metadata"]["name"])
    # The Gateway's listener is the port agw binds inside the pod: the container's http port.
    listener_ports = {listener["port"] for listener in gateway["spec"]["listeners"]}
    assert listener_ports == {named_port(agw_container, "http")}


def test_every_config_variable_is_set_in_the_deployment(resources: dict[str, dict[str, Any]],
                                                        agw_container: dict[str, Any]) -> None:
    """agw refuses a config with an unset ${VAR}; the pod's environment must provide each one."""
    used = {a or b for a, b in _VARIABLE.findall(embedded_config(resources))}
    provided = {e["name"] for e in agw_container.get("env", [])}
    assert used and used <= provided, used - provided


def test_agw_accepts_every_flag_the_deployment_passes(agw_container: dict[str, Any]) -> None:
    args = container_args(agw_container)
    assert args[0] == "run"
    result = subprocess.run([sys.executable, "-m", "agw", "run", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    known = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", result.stdout))
    flags = [a.split("=", 1)[0] for a in args[1:] if a.startswith("-")]
    assert flags and set(flags) <= known, set(flags) - known


# --- the ConfigMap's config, run by agw itself ----------------------------------------------------------

def deployment_env(agw_container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: str(e["value"]) for e in agw_container.get("env", []) if "value" in e}


def test_configmap_config_passes_agw_check(resources: dict[str, dict[str, Any]],
                                           agw_container: dict[str, Any], tmp_path: Path) -> None:
    """With the pod's environment, exactly as the Deployment sets it, the config is accepted."""
    config = tmp_path / "config.yaml"
    config.write_text(embedded_config(resources))
    result = run_agw("check", "-f", str(config), env=deployment_env(agw_container), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "AgentgatewayPolicy/agentgateway-system/jwt-auth-policy: Accepted" in lines, result.stdout
    assert all(line.endswith(": Accepted") for line in lines if line.strip()), result.stdout


def test_configmap_config_without_the_pod_environment_names_the_variable(
        resources: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(embedded_config(resources))
    pod_variables = {"KEYCLOAK_ISSUER", "KEYCLOAK_JWKS_PATH"}
    env = {k: v for k, v in os.environ.items() if k not in pod_variables}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run([sys.executable, "-m", "agw", "check", "-f", str(config)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    policy_line = next(line for line in result.stdout.splitlines()
                       if line.startswith("AgentgatewayPolicy/agentgateway-system/jwt-auth-policy: "))
    assert policy_line.startswith("AgentgatewayPolicy/agentgateway-system/jwt-auth-policy: Invalid: ")
    assert "KEYCLOAK_ISSUER" in policy_line and "KEYCLOAK_JWKS_PATH" in policy_line


@pytest.mark.e2e
def test_configmap_config_serves_the_guides_flow(resources: dict[str, dict[str, Any]],
                                                 agw_container: dict[str, Any], idp: MockIdp,
                                                 httpbin_backend: HttpbinServer, agw_proxy: Any) -> None:
    """The ConfigMap's config as a pod would run it, with the cluster's Services mapped to local ones by
    --resolve: Keycloak's JWKS path from the Deployment, the issuer of the local Keycloak stand-in, and a
    free port for the Gateway listener (the only edit; the pod binds 8080)."""
    documents = [d for d in yaml.safe_load_all(embedded_config(resources)) if d]
    gateway = next(d for d in documents if d["kind"] == "Gateway")
    listen_port = free_port()
    for listener in gateway["spec"]["listeners"]:
        listener["port"] = listen_port
    provider = next(d for d in documents if d["kind"] == "AgentgatewayPolicy")[
        "spec"]["traffic"]["jwtAuthentication"]["providers"][0]
    keycloak = provider["jwks"]["remote"]["backendRef"]
    route = next(d for d in documents if d["kind"] == "HTTPRoute")
    backend = route["spec"]["rules"][0]["backendRefs"][0]
    backend_namespace = backend.get("namespace", route["metadata"]["namespace"])

    env = deployment_env(agw_container)
    env["KEYCLOAK_ISSUER"] = idp.issuer
    proxy = agw_proxy(
        documents, env=env, wait_readyz=True,
        extra_args=[
            "--resolve", f"{keycloak['name']}.{keycloak['namespace']}:{keycloak['port']}=127.0.0.1:{idp.port}",
            "--resolve", f"{backend['name']}.{backend_namespace}:{backend['port']}={httpbin_backend.address}",
        ],
    )
    hostname = route["spec"]["hostnames"][0]

    refused = proxy.get("/headers", host=hostname)
    assert refused.status == 401, refused.text

    token = idp.password_token()
    accepted = proxy.get("/headers", {"Authorization": f"Bearer {token}"}, host=hostname)
    assert accepted.status == 200, accepted.text
    echoed = {k.lower(): v for k, v in accepted.json()["headers"].items()}
    assert echoed["host"].split(":")[0] == hostname
    # The credential is consumed by agw, as agentgateway does: httpbin never sees it.
    assert "authorization" not in echoed
