"""Node side: the planner, usage records, the executor and the node-local CLI.
The only part of imageprune that talks to the container runtime."""
