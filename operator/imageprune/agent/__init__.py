"""`imageprune agent`: one per node. Watches the node's own ImagePruneTasks, runs the
node engine when a task asks for a new run (or the image filesystem crosses a policy's
diskUsage.highPercent), records image usage between runs, and writes each task's
/status. Not a kopf operator: see docs/agent.md for why."""

import sys

# The agent runs on asyncio. httpcore (under lightkube) imports trio whenever it is
# installed, only to tell which event loop runs it: 4 MiB of the agent's 64 MiB.
sys.modules.setdefault("trio", None)  # type: ignore[arg-type]
