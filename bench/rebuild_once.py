"""Run one rebuild in a fresh process and print its figures as JSON (for peak RSS)."""

from __future__ import annotations

import json
import resource
import sys

from tokenledger.projections.rebuild import rebuild
from tokenledger.store import open_event_store


def main() -> None:
    store = open_event_store(sys.argv[1], auto_upgrade=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = rebuild(store)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store.engine.dispose()
    print(
        json.dumps(
            {
                "events": report.events,
                "seconds": report.seconds,
                "events_per_second": report.events / report.seconds,
                "peak_rss_mib": peak_kib / 1024,
                "rss_before_mib": before / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
