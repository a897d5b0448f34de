"""Fire times of cron lines by croniter, an implementation independent of opsd's (croner).

Reads a JSON object from stdin: {"start": "YYYY-mm-dd HH:MM:SS", "end": ..., "lines":
[{"id": ..., "expr": "5 fields or @nickname", "zone": "IANA zone"}]}, start and end in UTC.
Writes {"id": ["YYYY-mm-dd HH:MM:SS", ...]}: each line's fire times in [start, end), in UTC.

implement_cron_bug=True is croniter's cron-faithful mode: Vixie cron (Debian's) ANDs day of
month and day of week when either field starts with `*`, and ORs them otherwise; croniter's
default ORs whenever both are restricted (`*/2` included).
"""
import json
import sys
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from croniter import croniter

FORMAT = "%Y-%m-%d %H:%M:%S"


def main():
    query = json.load(sys.stdin)
    start = datetime.strptime(query["start"], FORMAT).replace(tzinfo=timezone.utc)
    end = datetime.strptime(query["end"], FORMAT).replace(tzinfo=timezone.utc)
    out = {}
    for line in query["lines"]:
        zone = timezone.utc if line["zone"] == "UTC" else ZoneInfo(line["zone"])
        it = croniter(line["expr"], start.astimezone(zone), implement_cron_bug=True)
        fires = []
        while True:
            t = it.get_next(float)
            if t >= end.timestamp():
                break
            fires.append(time.strftime(FORMAT, time.gmtime(t)))
        out[line["id"]] = fires
    json.dump(out, sys.stdout)


main()
