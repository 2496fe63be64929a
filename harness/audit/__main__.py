"""``python -m harness.audit``: the audit's worker process (JSON request on stdin)."""

import sys

from harness.audit.run import worker

sys.stdout.write(worker(sys.stdin.read()))
