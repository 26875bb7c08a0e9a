"""A small asyncio Kubernetes API client of our own: kubeconfig and in-cluster
credentials, get, list, watch (resumed from its resourceVersion, re-listed only after
410 Gone) and merge-patching /status, over the standard library's streams and ssl.

Why not a ready-made client: the node agent's idle budget is 64 MiB, and importing
kubernetes_asyncio alone costs 72 MiB (aiohttp 34). Knows nothing of imageprune's
objects, the node engine or the CRI (import-linter contracts enforce that)."""
