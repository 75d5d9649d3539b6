"""Installing what the servers need, idempotently and from registries these machines reach.

Debian packages come from apt, jars from Maven Central through ``mvn`` (cached in ``~/.m2``), and
the resolved classpath is cached under the stack folder keyed by the POM's hash, so a warm start
asks no registry at all.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from kappa.settings.paths import go_tool
from stack.paths import STACK_DIR, stack_home
from stack.process import ServiceError

JAVA17_CANDIDATES = (
    "/usr/lib/jvm/java-17-openjdk-amd64",
    "/usr/lib/jvm/java-17-openjdk-arm64",
    "/usr/lib/jvm/java-17-openjdk",
)


def _dpkg_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
    )
    return result.returncode == 0 and "install ok installed" in result.stdout


_apt_updated = False


def ensure_debian_packages(*packages: str) -> None:
    """apt-get install the packages that are not installed yet (needs root, as on these machines)."""
    global _apt_updated
    missing = [p for p in packages if not _dpkg_installed(p)]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise ServiceError(f"Debian packages {missing} are missing and there is no apt-get: install them by hand")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _apt_updated:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        _apt_updated = True
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise ServiceError(f"apt-get install {' '.join(missing)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")


@lru_cache(maxsize=1)
def java17_home() -> Path:
    """A Java 17 home: Cassandra 5.0 refuses Java 21+, and Temurin 25 is also on these machines."""
    explicit = os.environ.get("KAPPA_STACK__JAVA17_HOME")
    candidates = [explicit] if explicit else list(JAVA17_CANDIDATES)
    for candidate in candidates:
        if candidate and (Path(candidate) / "bin" / "java").exists():
            return Path(candidate)
    if explicit:
        raise ServiceError(f"KAPPA_STACK__JAVA17_HOME={explicit} has no bin/java")
    ensure_debian_packages("openjdk-17-jdk-headless")
    for candidate in JAVA17_CANDIDATES:
        if (Path(candidate) / "bin" / "java").exists():
            return Path(candidate)
    raise ServiceError("no Java 17 found after installing openjdk-17-jdk-headless; set KAPPA_STACK__JAVA17_HOME")


def maven_classpath(component: str) -> list[str]:
    """The runtime jars of ``stack/maven/<component>/pom.xml``, resolved once into ``~/.m2``."""
    pom = STACK_DIR / "maven" / component / "pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    cache = stack_home() / "cache" / f"{component}-{digest}.classpath"
    if cache.exists():
        jars = cache.read_text().strip().split(os.pathsep)
        if all(Path(j).exists() for j in jars):
            return jars
    if shutil.which("mvn") is None:
        ensure_debian_packages("maven")
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    result = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(pom), "dependency:build-classpath",
         "-DincludeScope=runtime", f"-Dmdep.outputFile={tmp}"],
        capture_output=True, text=True, env=dict(os.environ, JAVA_HOME=str(java17_home())),
    )
    if result.returncode != 0 or not tmp.exists():
        raise ServiceError(
            f"resolving {pom} from Maven Central failed (is the network up? is ~/.m2/settings.xml sane?):\n"
            f"{result.stdout[-3000:]}{result.stderr[-2000:]}"
        )
    tmp.replace(cache)
    return cache.read_text().strip().split(os.pathsep)


_building: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)


def go_binary(module: str, version: str, name: str) -> Path:
    """``go install <module>@<version>`` from the Go module proxy, once, into the stack's cache;
    the binary's path. Built, not downloaded: no vendor release is fetched. A second caller (the
    tests' background build, then the test that needs the tool) waits for the first one's build.
    The build runs at the lowest CPU priority, so it only takes what the servers leave idle."""
    binary = go_tool(name, version)
    with _building[str(binary)]:
        return binary if binary.exists() else _go_install(module, version, binary)


def _go_install(module: str, version: str, binary: Path) -> Path:
    name, folder = binary.name, binary.parent
    go = shutil.which("go")
    if go is None:
        raise ServiceError(f"{name} is built with Go (go install {module}@{version}), and no `go` is on PATH: "
                           "install Go 1.22 or newer (Debian: golang-go)")
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([go, "install", f"{module}@{version}"], capture_output=True, text=True,
                            env=dict(os.environ, GOBIN=str(folder), GOFLAGS="-mod=mod", CGO_ENABLED="0"),
                            preexec_fn=lambda: os.nice(19))
    if result.returncode != 0 or not binary.exists():
        raise ServiceError(f"go install {module}@{version} failed (is the Go module proxy reachable?):\n"
                           f"{result.stdout[-2000:]}{result.stderr[-3000:]}")
    return binary


def go_module_dir(module: str, version: str) -> Path:
    """The files of ``module@version`` from the Go module proxy (``go mod download``, cached in Go's
    module cache): how the CRD schemas the manifests are validated against arrive, without a vendor
    download."""
    go = shutil.which("go")
    if go is None:
        raise ServiceError(f"{module}@{version} comes from the Go module proxy, and no `go` is on PATH: "
                           "install Go 1.22 or newer (Debian: golang-go)")
    result = subprocess.run([go, "mod", "download", "-json", f"{module}@{version}"], capture_output=True, text=True,
                            env=dict(os.environ, GOFLAGS="-mod=mod"))
    try:
        answer = json.loads(result.stdout)
    except json.JSONDecodeError:
        answer = {}
    if result.returncode != 0 or "Dir" not in answer:
        raise ServiceError(f"go mod download {module}@{version} failed (is the Go module proxy reachable?): "
                           f"{answer.get('Error') or result.stderr[-2000:]}")
    return Path(answer["Dir"])
