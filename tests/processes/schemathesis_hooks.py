"""Hooks of the schemathesis runs of test_contract.py (loaded through SCHEMATHESIS_HOOKS): an
NDJSON body (``POST /api/runs``) is text, sent as schemathesis sends text/plain."""

import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")
