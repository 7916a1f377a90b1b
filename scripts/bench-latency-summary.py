#!/usr/bin/env python3
"""Summarise scripts/bench-latency.sh raw output (docs/bench/latency-*.txt).

Lines "LABEL SYSTEM {json}" (json = `metaq bench e2e --json --histogram` or
`peerbench ... --json --histogram`); '#' lines are comments. Prints markdown:
per label and system the median (min..max) of the latency percentiles and
client CPU, then for each label the full distribution of every system's
median-p99 run side by side (percentiles, then buckets with cumulative %).
"""
import json
import statistics as st
import sys

rows = {}  # (label, system) -> [result]
order = []
for line in open(sys.argv[1]):
    parts = line.split(' ', 2)
    if len(parts) < 3 or not parts[2].startswith('{'):
        continue  # a comment, or the summary appended to the raw file
    label, system, js = parts
    if (label, system) not in rows:
        order.append((label, system))
    rows.setdefault((label, system), []).append(json.loads(js))


def ms(us):
    return '%.2f' % (us / 1000)


def cell(rs, k, f=ms):
    v = [r[k] for r in rs]
    return '%s (%s..%s)' % (f(st.median(v)), f(min(v)), f(max(v)))


print('| run | system | n | p50 ms | p99 ms | p99.9 ms | max ms | client CPU µs/msg | failed |')
print('|---|---|---|---|---|---|---|---|---|')
for label, system in order:
    rs = rows[(label, system)]
    print('| %s | %s | %d | %s | %s | %s | %s | %s | %d |' % (
        label, system, len(rs), cell(rs, 'p50_us'), cell(rs, 'p99_us'), cell(rs, 'p999_us'), cell(rs, 'max_us'),
        cell(rs, 'cpu_us_per_msg', lambda v: '%.1f' % v), sum(r.get('failed', 0) for r in rs)))


def is_coarse(us):
    ns = round(us * 1000)
    k = ns.bit_length() - 1
    return ns == 1 << k or ns == 3 << (k - 1)


def median_run(rs):
    s = sorted(rs, key=lambda r: r['p99_us'])
    return s[(len(s) - 1) // 2]


labels = []
for label, _ in order:
    if label not in labels:
        labels.append(label)
for label in labels:
    systems = [s for (l, s) in order if l == label]
    runs = {s: median_run(rows[(label, s)]) for s in systems}
    hists = {s: r.get('histogram') for s, r in runs.items() if r.get('histogram')}
    if not hists:
        continue
    ss = list(hists)
    print('\n%s: the median-p99 run of each (ms)\n' % label)
    print('| percentile | ' + ' | '.join(ss) + ' |')
    print('|---|' + '---|' * len(ss))
    pcts = [p['percent'] for p in hists[ss[0]]['percentiles']]
    for i, p in enumerate(pcts):
        name = 'max' if p == 100 else '%g' % p
        print('| %s | ' % name + ' | '.join(ms(hists[s]['percentiles'][i]['us']) for s in ss) + ' |')
    # Every other bound of the fine buckets (2^k and 1.5 * 2^k ns), from the
    # first non-empty row to the last that is not yet 100% for every system.
    fine = sorted({b['le_us'] for s in ss for b in hists[s]['buckets'] if b['le_us'] > 0})
    bounds = [b for b in fine if is_coarse(b)]
    if fine and fine[-1] not in bounds:
        bounds.append(min(b for b in (2 ** k / 1000 for k in range(10, 40)) if b >= fine[-1]))
    print('\n%s: share of messages per bucket, cumulative in brackets\n' % label)
    print('| ≤ ms | ' + ' | '.join(ss) + ' |')
    print('|---|' + '---|' * len(ss))
    cum = {s: 0 for s in ss}
    for b in bounds:
        cells = []
        for s in ss:
            h = hists[s]
            n = sum(x['count'] for x in h['buckets'] if 0 < x['le_us'] <= b) - cum[s]
            cum[s] += n
            cells.append('%.2f%% (%.2f%%)' % (100 * n / h['count'], 100 * cum[s] / h['count']) if h['count'] else '-')
        print('| %s | ' % ('%.3g' % (b / 1000)) + ' | '.join(cells) + ' |')
