"""Render every kustomization of ``k8s/`` and validate each object offline, as an API server would.

Rendering is kustomize's own (``kustomize build``); validation is kubectl-validate, the SIG-CLI
validator that runs the API server's validation code on the Kubernetes OpenAPI schemas it carries
and on CRDs given to it: here the Spark operator's and the Prometheus operator's, at the versions
below. All three come from the Go module proxy (``go install``, ``go mod download``): the
development stack provisions them once into its cache (``python -m stack k8s-tools``, which
``make k8s-validate`` runs first), and this module runs them from there. No cluster is needed.

A problem is reported at its source: the file the object came from (kustomize's origin
annotation, ``buildMetadata: [originAnnotations]``), the object (kind/name) and the field.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from kappa.settings.paths import go_tool, state_dir

HERE = Path(__file__).resolve().parent
KUSTOMIZE = ("sigs.k8s.io/kustomize/kustomize/v5", "v5.7.1", "kustomize")
KUBECTL_VALIDATE = ("sigs.k8s.io/kubectl-validate", "v0.0.4", "kubectl-validate")
# The newest Kubernetes whose schemas kubectl-validate v0.0.4 carries (it asks no cluster for them).
KUBERNETES_VERSION = "1.30"
CRDS = (
    ("github.com/kubeflow/spark-operator/v2", "v2.3.0",
     ("config/crd/bases/sparkoperator.k8s.io_sparkapplications.yaml",)),
    ("github.com/prometheus-operator/prometheus-operator", "v0.85.0",
     tuple(f"example/prometheus-operator-crd/monitoring.coreos.com_{kind}.yaml"
           for kind in ("podmonitors", "servicemonitors", "prometheusrules"))),
)
ORIGIN = "config.kubernetes.io/origin"


def targets() -> list[Path]:
    """What a deployment applies: each overlay, and the rebuild's kustomization."""
    return sorted(p for p in (HERE / "overlays").iterdir() if (p / "kustomization.yaml").exists()) + [HERE / "rebuild"]


def standalone() -> list[Path]:
    """Manifests used without kustomize (spark-submit's pod template)."""
    return sorted((HERE / "spark-submit").glob("*.yaml"))


@dataclass(frozen=True)
class Problem:
    source: str   # the manifest file, relative to the repository
    object: str   # Kind/name
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.object}: {self.field}: {self.message}"


class ValidatorFailed(RuntimeError):
    """kustomize, kubectl-validate or the CRDs are not provisioned, or kubectl-validate gave no report:
    nothing was checked (not a problem found in a manifest)."""


class RenderFailed(RuntimeError):
    """kustomize could not build a kustomization: reported as a problem of that kustomization."""


def tool(spec: tuple[str, str, str]) -> Path:
    """Where ``spec`` (module, version, name) is built (:func:`kappa.settings.paths.go_tool`)."""
    module, version, name = spec
    return go_tool(name, version)


def crd_dir() -> Path:
    """Where the CRDs of :data:`CRDS` are kept, named by what they are."""
    return state_dir() / "cache" / f"k8s-crds-{hashlib.sha256(repr(CRDS).encode()).hexdigest()[:12]}"


def _provisioned(path: Path) -> Path:
    if not path.exists():
        raise ValidatorFailed(f"{path} is not there: provision kustomize, kubectl-validate and the CRDs with "
                           "`python -m stack k8s-tools` (make k8s-validate runs it)")
    return path


def relative(path: Path) -> str:
    """``path`` as the repository names it (how problems and the CLI name files)."""
    try:
        return str(path.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)


def render(target: Path, kustomize: Path | None = None) -> list[dict]:
    """The objects ``kustomize build target`` makes; RenderFailed with kustomize's message if it cannot."""
    kustomize = kustomize or _provisioned(tool(KUSTOMIZE))
    result = subprocess.run([str(kustomize), "build", str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RenderFailed(f"{relative(target)}: kustomize build failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _source(target: Path, obj: dict) -> str:
    origin = yaml.safe_load(((obj.get("metadata") or {}).get("annotations") or {}).get(ORIGIN, "") or "{}") or {}
    where = origin.get("path") or origin.get("configuredIn")
    return relative(target / where) if where else relative(target / "kustomization.yaml")


def _name(obj: dict) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def check(objects: list[tuple[str, dict]]) -> list[Problem]:
    """kubectl-validate on each (source, object); the problems, at their sources."""
    validator = _provisioned(tool(KUBECTL_VALIDATE))
    crds = _provisioned(crd_dir())
    with tempfile.TemporaryDirectory(prefix="kappa-k8s-") as tmp:
        files: dict[str, tuple[str, dict]] = {}
        for index, (source, obj) in enumerate(objects):
            path = Path(tmp) / f"{index:03d}.yaml"
            path.write_text(yaml.safe_dump(obj, sort_keys=False))
            files[str(path)] = (source, obj)
        result = subprocess.run([str(validator), tmp, "--local-crds", str(crds), "--version", KUBERNETES_VERSION,
                                 "-o", "json"], capture_output=True, text=True)
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError:
            raise ValidatorFailed(f"kubectl-validate gave no report (status {result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()[-2000:]}") from None
    problems = []
    for path, answers in report.items():
        source, obj = files.get(path, (path, {}))
        for answer in answers if isinstance(answers, list) else [answers]:
            if answer.get("status") != "Failure":
                continue
            causes = (answer.get("details") or {}).get("causes") or [{"field": "-", "message": answer.get("message", "")}]
            problems.extend(Problem(source, _name(obj), cause.get("field") or "-", (cause.get("message") or "").strip())
                            for cause in causes)
    return problems


def validate(paths: list[Path] | None = None) -> list[Problem]:
    """Render ``paths`` (default: every target) and check every object; the problems (none: valid)."""
    kustomize = _provisioned(tool(KUSTOMIZE))
    objects: list[tuple[str, dict]] = []
    problems: list[Problem] = []
    for target in paths if paths is not None else targets() + standalone():
        if target.is_file():
            objects.extend((relative(target), doc) for doc in yaml.safe_load_all(target.read_text()) if doc)
            continue
        try:
            objects.extend((_source(target, obj), obj) for obj in render(target, kustomize))
        except RenderFailed as exc:
            problems.append(Problem(relative(target / "kustomization.yaml"), "-", "-", str(exc)))
    return problems + (check(objects) if objects else [])
