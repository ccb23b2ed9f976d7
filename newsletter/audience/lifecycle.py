"""The statuses a subscriber can have, in a module light enough for `--help` and the web app.

The store's schema checks against the same tuple, so a new status is added here once.
"""

from __future__ import annotations

STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")
# Never mailed again, and not revived by a re-import or a new subscribe form.
SUPPRESSED = frozenset({"unsubscribed", "bounced", "complained"})
