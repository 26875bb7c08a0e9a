"""What is ours around lightkube, the Kubernetes client every front end uses: finding
and loading the credentials (in-cluster, kubeconfig files merged as kubectl merges them,
--context), exec credential plugins (v1 and v1beta1, with expiry and client
certificates, which lightkube lacks), a transport that puts a deadline and a size
bound on every answer, our CRDs as generic resources, and list-then-watch.

Knows nothing of the node engine, the CRI or kopf (import-linter contracts)."""
