"""The cluster API, imageprune.io/v1alpha1: names, the ImagePrunePolicy and ImagePruneTask
specs and their conversion to and from the dicts the apiserver sends, and the small pure
rules both the operator and the agent apply (label selectors, conditions, int-or-percent).

Pure: standard library and imageprune.policy only, no Kubernetes client, kopf or CRI."""
