"""`kubectl imageprune`: the kubectl plugin (console script `kubectl-imageprune`) that
shows a policy's results per node, starts a run and follows it, and explains why an
image was or was not removed. It reads what the operator and the agents write
(docs/protocol.md) through imageprune.kube, the one Kubernetes client.

Pure logic (nodes, follow, explain, output) below the commands that call the API
(an import-linter contract); no node engine, CLI or operator code."""
