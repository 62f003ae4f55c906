"""Validates Kubernetes manifests (YAML on stdin, `---`-separated) against the OpenAPI schemas of
the given Kubernetes versions with kubernetes-validate, strictly (unknown fields are errors).

Usage: validate_manifests.py VERSION... < manifests.yaml

Prints one JSON object: `available` (the versions kubernetes-validate ships) and `results`, one
per document and version: kind, apiVersion, name, version, and `status` — `ok`, `invalid` (with
`message` and `path`) or `no-schema` (a kind it has no schema for, e.g. a custom resource).
"""

import json
import sys

import kubernetes_validate
import yaml
from kubernetes_validate import utils


def main() -> None:
    versions = sys.argv[1:]
    docs = [d for d in yaml.safe_load_all(sys.stdin.read()) if d]
    results = []
    for doc in docs:
        for version in versions:
            r = {
                "kind": doc.get("kind"),
                "apiVersion": doc.get("apiVersion"),
                "name": (doc.get("metadata") or {}).get("name"),
                "version": version,
            }
            try:
                kubernetes_validate.validate(doc, version, strict=True)
                r["status"] = "ok"
            except utils.ValidationError as e:
                r["status"] = "invalid"
                r["path"] = ".".join(str(p) for p in e.path)
                r["message"] = e.message
            except utils.SchemaNotFoundError as e:
                r["status"] = "no-schema"
                r["message"] = e.message
            results.append(r)
    print(json.dumps({"available": utils.all_versions(), "results": results}))


if __name__ == "__main__":
    main()
