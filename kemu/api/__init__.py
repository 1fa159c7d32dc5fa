"""The one object model every component shares: Kubernetes-shaped dicts, their kinds, defaults and validation.

Objects stay in the exact JSON shape `kubectl get -o json` shows (so manifests round-trip and jq recipes work);
this package knows what each kind is, fills upstream defaults and rejects bad input before anything is stored.
"""
from kemu.api.kinds import KINDS, Kind, kind_of, resolve_kind
from kemu.api.meta import ManifestError, ObjectRef, key_for, ref_of

__all__ = ["KINDS", "Kind", "resolve_kind", "kind_of", "ObjectRef", "key_for", "ref_of", "ManifestError"]
