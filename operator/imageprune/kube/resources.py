"""Our CRDs, and the core objects we write, as lightkube generic resources (plain
dicts: no generated models to import, which keeps the agent small)."""

from __future__ import annotations

from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from imageprune.api import names

Task = create_global_resource(names.GROUP, names.VERSION, names.TASK_KIND, names.TASK_PLURAL)
Policy = create_global_resource(names.GROUP, names.VERSION, names.POLICY_KIND, names.POLICY_PLURAL)
Event = create_namespaced_resource("", "v1", "Event", "events")
Pod = create_namespaced_resource("", "v1", "Pod", "pods")  # the operator reads agent pods
Node = create_global_resource("", "v1", "Node", "nodes")  # the operator indexes their labels
# The operator's leader election (cluster/leader.py).
Lease = create_namespaced_resource("coordination.k8s.io", "v1", "Lease", "leases")
