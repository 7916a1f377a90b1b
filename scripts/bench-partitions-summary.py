#!/usr/bin/env python3
"""Summarise scripts/bench-partitions.sh output (stdin): median and min..max per partition count."""
import json, re, statistics, sys
rows = {}
for line in sys.stdin:
    m = re.match(r'partitions=(\d+) run=\d+ (\{.*\})', line)
    if m:
        rows.setdefault(int(m.group(1)), []).append(json.loads(m.group(2)))
base = None
for n in sorted(rows):
    rs = rows[n]
    def f(k):
        v = [r.get(k, 0) for r in rs]
        return statistics.median(v), min(v), max(v)
    rate, p99 = f('msgs_per_s'), f('p99_us')
    if base is None:
        base = (rate[0], p99[0])
    print(f"{n:>6} partitions: {rate[0]/1e3:7.0f}k msgs/s ({rate[1]/1e3:.0f}k..{rate[2]/1e3:.0f}k) "
          f"= {rate[0]/base[0]*100:5.1f}% | p50 {f('p50_us')[0]/1e3:.1f} ms | p99 {p99[0]/1e3:.1f} ms "
          f"({p99[1]/1e3:.1f}..{p99[2]/1e3:.1f}) = {p99[0]/base[1]:.2f}x | "
          f"server {f('server_cpu_us_per_msg')[0]:.2f} us/msg, client {f('cpu_us_per_msg')[0]:.2f} us/msg")
