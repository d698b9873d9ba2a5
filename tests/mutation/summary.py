"""Per-module kill rate and surviving mutants of a cosmic-ray session.

Usage: python summary.py SESSION.sqlite [--diffs]
"""

import sys
from collections import Counter, defaultdict

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome

session = sys.argv[1]
show_diffs = "--diffs" in sys.argv
stats = defaultdict(Counter)
survivors = []
with use_db(session, WorkDB.Mode.open) as db:
    results = dict(db.results)
    for item in db.work_items:
        mut = item.mutations[0]
        module = str(mut.module_path)
        s = stats[module]
        s["generated"] += 1
        res = results.get(item.job_id)
        if res is None:
            s["pending"] += 1
        elif res.worker_outcome == WorkerOutcome.SKIPPED:
            s["skipped"] += 1
        elif res.worker_outcome != WorkerOutcome.NORMAL:
            s["error"] += 1  # mutant did not import/run under the worker (counts as killed)
        elif res.test_outcome == TestOutcome.SURVIVED:
            s["survived"] += 1
            survivors.append((module, mut.start_pos[0], mut.operator_name, mut.occurrence, res.diff))
        elif res.output == "timeout":
            s["timeout"] += 1
        else:
            s["killed"] += 1

cols = ["generated", "skipped", "pending", "killed", "timeout", "error", "survived"]
print(f"{'module':40s} " + " ".join(f"{c:>9s}" for c in cols) + "  kill-rate")
total = Counter()
for module in sorted(stats):
    s = stats[module]
    total.update(s)
    run = s["killed"] + s["timeout"] + s["error"] + s["survived"]
    rate = f"{100 * (run - s['survived']) / run:6.1f}%" if run else "     -"
    print(f"{module:40s} " + " ".join(f"{s[c]:9d}" for c in cols) + f"  {rate}")
run = total["killed"] + total["timeout"] + total["error"] + total["survived"]
rate = f"{100 * (run - total['survived']) / run:6.1f}%" if run else "     -"
print(f"{'TOTAL':40s} " + " ".join(f"{total[c]:9d}" for c in cols) + f"  {rate}")
print("\nkill rate = (killed + timeout + error) / (mutants run); skipped = not sampled")
print(f"\nSurviving mutants ({len(survivors)}):")
for module, line, op, occ, diff in sorted(survivors):
    print(f"  {module}:{line}  {op} #{occ}")
    if show_diffs and diff:
        print("\n".join("      " + l for l in diff.splitlines() if l[:1] in "+-" and l[:3] not in ("+++", "---")))
