"""k8s/: every overlay renders and validates offline, problems are reported at their source, and what
the manifests name (commands, modules, config keys, ports, probe paths, files) is what the code has:
read from the code itself (its argument parsers, settings models, config models, endpoint paths,
Dockerfile), not from a second list."""
from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

import kappa.settings as settings_module
from connectors import cli as connectors_cli
from kappa import cli as kappa_cli
from k8s import generate, validate
from monitoring import endpoint
from orchestration import config as orchestration_config
from stack import k8s_tools

REPO = Path(__file__).resolve().parents[3]
PRODUCT = ("kappa", "streaming", "connectors", "batch_replay", "monitoring", "schemas")
DEVELOPMENT = ("stack", "demo", "bench", "tests")
BROKEN = Path(__file__).resolve().parent / "broken"
CREDENTIAL_FIELDS = {"password", "secret_key", "access_key", "username", "user"}


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, rest) of the Dockerfile, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            instruction, _, rest = current.strip().partition(" ")
            lines.append((instruction.upper(), rest))
            current = ""
    return lines


def _workdir() -> str:
    return [rest for instruction, rest in _dockerfile() if instruction == "WORKDIR"][-1]


def _copied() -> list[str]:
    """The repo paths the image's last stage copies from the build context."""
    stages = [i for i, (instruction, _) in enumerate(_dockerfile()) if instruction == "FROM"]
    sources = []
    for instruction, rest in _dockerfile()[stages[-1]:]:
        if instruction == "COPY" and not rest.startswith("--from"):
            sources.extend(rest.split()[:-1])
    return sources


@pytest.fixture(scope="module", autouse=True)
def _validator_tools() -> None:
    """kustomize, kubectl-validate and the CRDs, provisioned by the development stack (once; cached)."""
    k8s_tools.provision()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {validate.relative(target): validate.render(target) for target in validate.targets()}


def _objects(rendered, kind: str | None = None) -> list[dict]:
    return [obj for objects in rendered.values() for obj in objects if kind is None or obj["kind"] == kind]


def _config_map(rendered, target: str, name: str) -> dict[str, str]:
    """The data of ConfigMap ``name`` in ``target`` (a generated one has a hash suffix); the rebuild
    is applied beside an overlay and uses its ConfigMaps."""
    for obj in rendered[target] + (rendered["k8s/overlays/dev"] if target == "k8s/rebuild" else []):
        if obj["kind"] == "ConfigMap" and re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", obj["metadata"]["name"]):
            return obj.get("data") or {}
    raise AssertionError(f"{target} has no ConfigMap {name}")


def _pods(rendered):
    """(target, owner, pod spec, containers) of every Deployment and Job."""
    for target, objects in rendered.items():
        for obj in objects:
            if obj["kind"] in ("Deployment", "Job"):
                spec = obj["spec"]["template"]["spec"]
                yield target, f"{obj['kind']}/{obj['metadata']['name']}", spec, \
                    spec.get("initContainers", []) + spec["containers"]


def _parse(module: str, arguments: list[str]):
    """``python -m kappa <arguments>`` parsed by the real command line, and the connector config model
    if the command runs a connector."""
    assert module == "kappa", f"python -m {module}: the image's processes run the kappa command"
    try:
        parsed = kappa_cli.parser().parse_args(arguments)
    except SystemExit as exc:
        raise AssertionError(f"kappa {shlex.join(arguments)}: its parser refuses these arguments") from exc
    return parsed, connectors_cli.model(parsed.kind)[0] if parsed.command == "connector" else None


def _in_image(path: str) -> Path:
    """The repo file that ``path`` in the image is (the Dockerfile copies the code under its WORKDIR)."""
    workdir = _workdir().rstrip("/") + "/"
    assert path.startswith(workdir), f"{path} is not under the image's code folder {workdir}"
    relative = path.removeprefix(workdir)
    assert any(relative == c.rstrip("/") or relative.startswith(c) for c in _copied()), \
        f"{path}: the Dockerfile does not copy {relative}"
    return REPO / relative


def test_every_overlay_renders_and_validates_offline() -> None:
    problems = validate.validate()
    assert problems == [], "\n".join(map(str, problems))


def test_a_broken_manifest_is_reported_at_its_file_object_and_field() -> None:
    problems = validate.validate([BROKEN])
    assert [(p.source, p.object, p.field) for p in problems] == [
        ("tests/unit/k8s/broken/connector.yaml", "Deployment/broken-connector",
         "spec.template.spec.containers[0].livenessProbe.httpGet.prot"),
        ("tests/unit/k8s/broken/pipeline.yaml", "SparkApplication/broken-pipeline", "spec.restartPolicy.type"),
    ]
    assert "unknown field" in problems[0].message and '"Sometimes"' in problems[1].message


def test_the_generated_manifests_are_current() -> None:
    assert generate.stale() == [], "run python -m k8s generate"


def test_what_the_deployments_run_is_what_the_code_has(rendered) -> None:
    seen = set()
    for target, owner, spec, containers in _pods(rendered):
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in containers:
            args = container.get("command", []) + container["args"]
            assert args[:2] == ["python", "-m"], f"{target} {owner}: runs {args}, not python -m <module>"
            module, arguments = args[2], args[3:]
            parsed, model = _parse(module, arguments)
            seen.add(" ".join(arguments[:2]) if parsed.command == "connector" else parsed.command)
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            if model is not None:  # a connector: its TOML file from the mounted ConfigMap, checked by its model
                mount = next(m for m in container["volumeMounts"] if str(parsed.config).startswith(m["mountPath"]))
                data = _config_map(rendered, target, volumes[mount["name"]]["configMap"]["name"])
                config = model.model_validate(tomllib.loads(data[parsed.config.name]))
                assert ports == {"metrics": config.metrics_port}, f"{owner}: port vs metrics_port {config.metrics_port}"
                for variable in getattr(config, "headers_from_env", {}).values():
                    assert variable in _secret_keys(rendered, target) or target.endswith("prod"), \
                        f"{owner}: {variable} is in no Secret"
            elif getattr(parsed, "port", None):
                assert ports == {"metrics": parsed.port}, f"{owner}: port vs --port {parsed.port}"
            for probe, path in (("livenessProbe", endpoint.LIVENESS_PATH), ("readinessProbe", endpoint.READINESS_PATH)):
                if ports:
                    get = container[probe]["httpGet"]
                    assert (get["path"], get["port"]) == (path, "metrics"), f"{owner}: {probe} {get}"
            for mount in container.get("volumeMounts", []):
                _check_mount(rendered, target, owner, volumes[mount["name"]], mount)
            for argument in arguments:
                if argument.startswith(_workdir()):
                    assert _in_image(argument).exists(), f"{owner}: {argument} is no file of the repo"
    assert {"connector cdc", "connector api", "connector files", "lag-exporter", "rebuild"} <= seen


def _check_mount(rendered, target: str, owner: str, volume: dict, mount: dict) -> None:
    if "configMap" not in volume or "subPath" not in mount:
        return
    data = _config_map(rendered, target, volume["configMap"]["name"])
    assert mount["subPath"] in data, f"{owner}: {volume['configMap']['name']} has no {mount['subPath']}"
    replaced = _in_image(mount["mountPath"])  # the ConfigMap's file is mounted over the image's own
    assert replaced.exists() and replaced.read_text() == data[mount["subPath"]], \
        f"{owner}: {mount['mountPath']} is not the repo's {replaced.relative_to(REPO)}"


def test_the_pipelines_spark_applications_run_the_streaming_entry_point(rendered) -> None:
    applications = _objects(rendered, "SparkApplication")
    assert {a["metadata"]["name"] for a in applications} >= {"kappa-orders", "kappa-customers", "kappa-orders-rebuild"}
    for application in applications:
        spec, name = application["spec"], application["metadata"]["name"]
        main = spec["mainApplicationFile"].removeprefix("local://")
        assert _in_image(main) == REPO / "kappa" / "__main__.py", f"{name}: {main}"
        parsed = kappa_cli.parser().parse_args(spec["arguments"])
        assert parsed.command == "run" and _in_image(str(parsed.pipeline)).exists(), name
        assert spec["driver"]["ports"] == [{"name": "metrics", "containerPort": parsed.metrics_port, "protocol": "TCP"}]
        assert spec["sparkVersion"] == importlib.import_module("pyspark").__version__, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        target = next(t for t, objects in rendered.items() if application in objects)
        for mount in spec["driver"]["volumeMounts"]:
            _check_mount(rendered, target, name, volumes[mount["name"]], mount)


def _secret_keys(rendered, target: str) -> set[str]:
    return {key for obj in rendered[target] if obj["kind"] == "Secret"
            for key in list(obj.get("data") or {}) + list(obj.get("stringData") or {})}


def _settings_field(variable: str) -> tuple[str, str]:
    group, _, field = variable.removeprefix("KAPPA_").lower().partition("__")
    model = settings_module.Settings.model_fields.get(group)
    assert model is not None, f"{variable}: the settings have no group [{group}]"
    assert isinstance(model.annotation, type) and issubclass(model.annotation, BaseModel)
    assert field in model.annotation.model_fields, f"{variable}: [{group}] has no {field} (kappa/settings/__init__.py)"
    return group, field


def test_config_keys_are_settings_and_credentials_are_only_in_secrets(rendered, monkeypatch) -> None:
    for target in rendered:
        if target == "k8s/rebuild":
            continue
        values = _config_map(rendered, target, orchestration_config.load({}).k8s_config_map)
        for variable in values:
            _, field = _settings_field(variable)
            assert field not in CREDENTIAL_FIELDS, f"{target}: {variable} is a credential in a ConfigMap"
            monkeypatch.setenv(variable, values[variable])
        for variable in _secret_keys(rendered, target):
            if variable.startswith("KAPPA_") and "__" in variable:
                _settings_field(variable)
        typed = settings_module.Settings()  # every value parses as its setting's type
        assert typed.metrics.host == "0.0.0.0" and typed.streaming.checkpoint_dir.startswith("s3a://")
        for variable in values:
            monkeypatch.delenv(variable)


def test_the_airflow_kubernetes_runner_names_what_the_manifests_define(rendered) -> None:
    config = orchestration_config.load({"KAPPA_ORCHESTRATION__RUNNER": "kubernetes"})
    for target in ("k8s/overlays/dev", "k8s/overlays/prod"):
        objects = rendered[target]
        assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {config.k8s_namespace}
        assert _config_map(rendered, target, config.k8s_config_map)
        references = {ref["secretRef"]["name"] for _, _, _, containers in _pods({target: objects})
                      for c in containers for ref in c.get("envFrom", []) if "secretRef" in ref}
        assert references == {config.k8s_secret}
    assert config.image.split(":")[0] == "kappa-platform"  # the image name the overlays set
    assert any(o["kind"] == "Secret" and o["metadata"]["name"] == config.k8s_secret
               for o in rendered["k8s/overlays/dev"])


def test_the_rebuild_names_one_version_for_its_start_and_its_shadow_job(rendered) -> None:
    objects = rendered["k8s/rebuild"]
    replay = kappa_cli.parser()
    start = next(o for o in objects if o["metadata"]["name"].endswith("-start"))
    started = replay.parse_args(start["spec"]["template"]["spec"]["containers"][0]["args"][3:])
    shadow = next(o for o in objects if o["kind"] == "SparkApplication")
    streaming = kappa_cli.parser().parse_args(shadow["spec"]["arguments"])
    assert started.step == "start" and started.launch == "none"
    assert started.version == streaming.serving_version
    assert Path(streaming.pipeline).stem == started.pipelines
    cut_over = next(o for o in objects if o["metadata"]["name"].endswith("-cut-over"))["spec"]["template"]["spec"]
    steps = [replay.parse_args(c["args"][3:]).step for c in cut_over["initContainers"] + cut_over["containers"]]
    assert steps == ["wait", "cut-over", "stop-old"]


def test_the_images_paths_and_entry_point_exist_in_the_code() -> None:
    instructions = _dockerfile()
    for source in _copied() + [rest.split()[0] for instruction, rest in instructions
                               if instruction == "COPY" and not rest.startswith("--from")]:
        assert (REPO / source).exists(), f"the Dockerfile copies {source}, which the repo does not have"
    cmd = next(rest for instruction, rest in instructions if instruction == "CMD")
    command = json.loads(cmd)
    assert command[:2] == ["python", "-m"]
    assert command[2] == "kappa"
    with pytest.raises(SystemExit) as shown:
        kappa_cli.parser().parse_args(command[3:])
    assert shown.value.code == 0  # --help: the module's own parser answered
    environment = " ".join(rest for instruction, rest in instructions if instruction == "ENV")
    python = re.search(r"python:3\.(\d+)-slim", next(r for i, r in instructions if i == "ARG" and "PYTHON_IMAGE" in r))
    assert f"lib/python3.{python.group(1)}/site-packages/pyspark" in environment  # SPARK_HOME is the venv's pyspark
    required = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    low, high = re.findall(r"3\.(\d+)", required)
    assert int(low) <= int(python.group(1)) < int(high)  # the image's Python is one the project supports
    pom = next(rest for instruction, rest in instructions if instruction == "COPY" and "pom.xml" in rest).split()[0]
    assert REPO / pom == REPO / "stack" / "maven" / "spark" / "pom.xml"  # the jars a local session resolves
    for module in PRODUCT:
        assert f"{module}/" in _copied(), f"the image lacks {module}/"
    for module in DEVELOPMENT:
        assert f"{module}/" not in _copied(), f"the image holds the development {module}/"


def test_the_product_does_not_import_the_development_packages() -> None:
    """What the image leaves out (the local stack, the demo, the bench, the tests) no module of the
    image's packages imports when it loads (a function of a development flow may, when run)."""
    found = []
    for package in PRODUCT:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.parse(path.read_text()).body:
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                found += [f"{path.relative_to(REPO)}:{node.lineno} imports {name}" for name in names
                          if name.split(".")[0] in DEVELOPMENT]
    assert found == []


def _pod_labels(rendered, target: str) -> list[tuple[str, dict, set[str]]]:
    """(owner, labels, container port names) of every pod the target makes; a SparkApplication's
    driver pod also gets Spark's own ``spark-role: driver``."""
    pods = []
    for obj in rendered[target]:
        if obj["kind"] in ("Deployment", "Job"):
            template = obj["spec"]["template"]
            ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
            pods.append((f"{obj['kind']}/{obj['metadata']['name']}", template["metadata"].get("labels", {}), ports))
        elif obj["kind"] == "SparkApplication":
            driver = obj["spec"]["driver"]
            pods.append((f"SparkApplication/{obj['metadata']['name']}", {**driver["labels"], "spark-role": "driver"},
                         {p["name"] for p in driver.get("ports", [])}))
    return pods


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector["matchLabels"].items())


@pytest.mark.parametrize("target", ["k8s/overlays/dev", "k8s/overlays/prod"])
def test_every_selector_and_scraped_port_finds_its_pods(rendered, target) -> None:
    pods = _pod_labels(rendered, target)
    services = {o["metadata"]["name"]: o for o in rendered[target] if o["kind"] == "Service"}
    for obj in rendered[target]:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] == "PodMonitor":
            chosen = [(owner, ports) for owner, labels, ports in pods if _selects(obj["spec"]["selector"], labels)]
            assert chosen, f"{name} selects no pod"
            for endpoint_ in obj["spec"]["podMetricsEndpoints"]:
                assert endpoint_["path"] == endpoint.METRICS_PATH
                assert all(endpoint_["port"] in ports for _, ports in chosen), f"{name}: port {endpoint_['port']}"
        elif obj["kind"] == "ServiceMonitor":
            chosen = [s for s in services.values() if _selects(obj["spec"]["selector"], s["metadata"]["labels"])]
            assert chosen, f"{name} selects no Service"
            for service in chosen:
                assert {e["port"] for e in obj["spec"]["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
        elif obj["kind"] == "PodDisruptionBudget":
            assert [o for o, labels, _ in pods if _selects(obj["spec"]["selector"], labels)], f"{name} selects no pod"
        elif obj["kind"] == "Service":
            backing = [(o, ports) for o, labels, ports in pods
                       if all(labels.get(k) == v for k, v in obj["spec"]["selector"].items())]
            assert backing, f"{name} has no pods"
            assert all(p["targetPort"] in ports for p in obj["spec"]["ports"] for _, ports in backing), name
        elif obj["kind"] == "Deployment":
            assert _selects(obj["spec"]["selector"], obj["spec"]["template"]["metadata"]["labels"]), name
