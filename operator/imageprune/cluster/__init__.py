"""The cluster operator (`imageprune operator`, on kopf): it turns each ImagePrunePolicy into
one ImagePruneTask per matching node, releases them in waves, schedules runs and writes the
tasks' results back into the policy status.

The decisions are pure modules (observed, schedule, rollout, fanout, aggregate) without kopf;
handlers.py holds the thin kopf layer, kubeapi.py the few raw API calls, main.py the flags."""
