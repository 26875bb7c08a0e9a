"""Names of the imageprune.io API, written once: the group, kinds, labels and annotations.
They must match charts/imageprune/crds/ (tests/unit/test_api_names.py checks)."""

from __future__ import annotations

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
FINALIZER: Final = f"{GROUP}/finalizer"
