"""The node-local command line: parses flags, calls the node service, renders."""

import os

# gRPC's C core logs some endpoint problems to stderr itself, on top of the error
# we report. Read once when grpc is first imported, which is after this line.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
