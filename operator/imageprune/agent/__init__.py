"""`imageprune agent`: one per node. Watches the node's own ImagePruneTasks, runs the
node engine when a task asks for a new run (or the image filesystem crosses a policy's
diskUsage.highPercent), records image usage between runs, and writes each task's
/status. Not a kopf operator: see imageprune.kube for why."""
