"""Names of the imageprune.io API, written once: the group, kinds, labels and annotations.
They must match charts/imageprune/crds/ (tests/unit/test_api_names.py checks)."""

from __future__ import annotations

import re
from typing import Final

GROUP: Final = "imageprune.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORY: Final = "imageprune"

POLICY_KIND: Final = "ImagePrunePolicy"
POLICY_PLURAL: Final = "imageprunepolicies"
POLICY_SHORT: Final = "ipp"

TASK_KIND: Final = "ImagePruneTask"
TASK_PLURAL: Final = "imageprunetasks"
TASK_SHORT: Final = "ipt"

# On every task: which policy and node it belongs to (values via task.label_value).
POLICY_LABEL: Final = f"{GROUP}/policy"
NODE_LABEL: Final = f"{GROUP}/node"
# On a policy: any new value asks for a run now.
RUN_NOW_ANNOTATION: Final = f"{GROUP}/run-now"

# kopf's annotation progress storage and its finalizer use our prefix, not kopf.zalando.org:
# fixed from the first release, since renaming them strands objects written by older versions.
KOPF_PREFIX: Final = GROUP
FINALIZER: Final = f"{GROUP}/cleanup"
# The run-now value that already started a run, so one value never starts two.
RUN_NOW_HANDLED_ANNOTATION: Final = f"{GROUP}/run-now-handled"

# Object names as the apiserver checks them (RFC 1123): nodes, policies and leases are
# DNS subdomains, namespaces DNS labels.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(rf"(?=.{{1,253}}$){_LABEL.pattern}(\.{_LABEL.pattern})*")


def name_problem(text: str, *, namespace: bool = False) -> str | None:
    """Why `text` cannot name an object (or a namespace), None when it can. A name
    that cannot exist is refused up front: a client would wait for it for ever, and
    "/" or ".." in it would change the API path it is put into."""
    if (_LABEL if namespace else _SUBDOMAIN).fullmatch(text):
        return None
    allowed = "'-'" if namespace else "'-' and '.'"
    most = 63 if namespace else 253
    return (
        f"{text[:80]!r} is not {'a namespace' if namespace else 'an object name'} "
        f"(lower case letters, digits and {allowed}; at most {most} characters)"
    )


# A label's name part, and its value when not empty.
_LABEL_NAME = re.compile(r"(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def label_problem(key: str, value: str) -> str | None:
    """Why `key=value` cannot be a label (the apiserver would refuse a selector holding
    it), None when it can: KEY is [PREFIX/]NAME, PREFIX a DNS subdomain."""
    prefix, slash, name = key.rpartition("/")
    if (slash and name_problem(prefix)) or not _LABEL_NAME.fullmatch(name):
        return f"{key[:80]!r} is not a label key ([prefix/]name, the name at most 63 characters)"
    if value and not _LABEL_NAME.fullmatch(value):
        return f"{value[:80]!r} is not a label value (at most 63 letters, digits, '-', '_', '.')"
    return None
