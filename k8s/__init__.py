"""The platform on Kubernetes: kustomize manifests (``base/``, ``overlays/``, ``rebuild/``), the
generated parts of them (:mod:`k8s.generate`) and their offline validation (:mod:`k8s.validate`).
``python -m k8s generate|validate``; docs/kubernetes.md is the guide."""
