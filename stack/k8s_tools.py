"""What ``k8s/validate.py`` runs, provisioned from the Go module proxy into the stack's cache:
kustomize and kubectl-validate built with ``go install``, and the operators' CRDs taken from their
modules (``go mod download``). Once; later calls find them there."""
from __future__ import annotations

import shutil
import threading

from k8s import validate
from stack.process import ServiceError
from stack.provision import go_binary, go_module_dir


_lock = threading.Lock()


def provision() -> None:
    with _lock:  # the tests' background build and the k8s tests may both ask
        _provision()


def _provision() -> None:
    for module, version, name in (validate.KUSTOMIZE, validate.KUBECTL_VALIDATE):
        go_binary(module, version, name)
    folder = validate.crd_dir()
    if folder.is_dir():
        return
    staging = folder.with_suffix(".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for module, version, files in validate.CRDS:
        root = go_module_dir(module, version)
        for name in files:
            source = root / name
            if not source.exists():
                raise ServiceError(f"{module}@{version} has no {name}: the CRD moved; update k8s/validate.py's CRDS")
            (staging / source.name).write_bytes(source.read_bytes())  # the module cache is read-only
    staging.rename(folder)
