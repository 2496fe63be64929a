"""Static audit of every file of a release set, before any cell runs.

Each finding has a code; a policy maps the code to ``blocker``, ``warning`` or ``ignore``
(harness.policy: ReleasePolicy; the matrix may change it). A check that could not run at all
is an ``error`` finding, which no policy can ignore: an unjudged release is not a good one.

One module per source, each with its checks in one ``CHECKS`` table (name -> function):

- ``metadata``: file name vs WHEEL vs METADATA, RECORD hashes, size, check-wheel-contents,
  twine's rendering check;
- ``native``: ELF architecture vs platform tag, auditwheel's platform policy / external
  libraries / glibc symbol versions, NEEDED vs bundled libraries, abi3;
- ``source``: the package's own Python code loading native libraries from environment paths;
- ``sdist``: readable, same version, holds what its build backend needs (no sdist: a warning).

``model`` holds the data (Finding, options, what a check sees), ``run`` runs the tables. A new
check is one function and one table entry.
"""

from harness.audit.model import AuditOptions, AuditReport, Finding, WheelFacts
from harness.audit.run import audit_release, audit_wheel, finding_lines, findings_json
from harness.audit.sdist import audit_sdist
from harness.audit.source import EnvLoad, env_native_loads
from harness.policy import Severity

__all__ = ["AuditOptions", "AuditReport", "EnvLoad", "Finding", "Severity", "WheelFacts",
           "audit_release", "audit_sdist", "audit_wheel", "env_native_loads", "finding_lines",
           "findings_json"]
