"""``python -m k8s validate``: render every kustomization of k8s/ and validate each object offline.
``python -m k8s generate [--check]``: write the manifests that copy the repo's pipelines, rules and dashboards."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m k8s", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="kustomize build + kubectl-validate (Kubernetes and CRD schemas)")
    validate.add_argument("paths", nargs="*", type=Path,
                          help="kustomization folders or manifest files (default: every overlay, k8s/rebuild and "
                               "k8s/spark-submit)")
    generate = commands.add_parser("generate", help="write k8s/base's pipelines, rules and dashboards manifests")
    generate.add_argument("--check", action="store_true", help="only say which are out of date (exit 1 if any)")
    args = parser.parse_args(argv)
    from k8s import generate as generated

    if args.command == "generate" and not args.check:
        for path in generated.write():
            print(f"wrote {path.relative_to(generated.REPO)}")
        return 0
    checking = args.command == "generate"  # generate --check; validate checks too, unless given paths
    stale = generated.stale() if checking or not args.paths else []
    for path in stale:
        print(f"{path.relative_to(generated.REPO)} is out of date: run python -m k8s generate", file=sys.stderr)
    if stale:
        return 1
    if checking:
        return 0

    from k8s import validate as validation

    try:
        paths = args.paths or validation.targets() + validation.standalone()
        problems = validation.validate(paths)
    except validation.ValidatorFailed as exc:
        print(f"python -m k8s validate: {exc}", file=sys.stderr)
        return 1
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in the manifests", file=sys.stderr)
        return 1
    print(f"valid: {', '.join(str(validation.relative(p)) for p in paths)} (Kubernetes {validation.KUBERNETES_VERSION} "
          "schemas, Spark and Prometheus operator CRDs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
