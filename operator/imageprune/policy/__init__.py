"""The meaning of an ImagePrunePolicy's selection, shared by the node CLI, the agent
and the cluster operator. Pure: no I/O, no Kubernetes or CRI imports."""
