"""imageprune_cri: a typed asyncio client for the CRI v1 image and runtime services.

This package stands alone: it imports nothing of the operator (an import-linter
contract enforces that), so the node agent is its only user.
"""
