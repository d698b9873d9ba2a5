"""Keep a random sample of N mutants per module in a cosmic-ray session; mark the rest skipped.

Usage: python sample.py SESSION.sqlite N [SEED]   (N <= 0 keeps every mutant)

Mutants inside type annotations of modules with ``from __future__ import annotations`` are
skipped first (never sampled): the annotations are never evaluated, so such mutants (e.g.
``Tensor | None`` -> ``Tensor ** None``) are equivalent by construction.
"""

import ast
import random
import sys
from collections import defaultdict

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult

session, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 0)


def annotation_spans(path):
    """(start, end) positions of the annotations of a module whose annotations are lazy."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    lazy = any(
        isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    if not lazy:
        return []
    spans = []
    for node in ast.walk(tree):
        anns = []
        if isinstance(node, ast.arg) and node.annotation is not None:
            anns.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            anns.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            anns.append(node.annotation)
        spans += [((a.lineno, a.col_offset), (a.end_lineno, a.end_col_offset)) for a in anns]
    return spans


spans_cache = {}
with use_db(session, WorkDB.Mode.open) as db:
    by_module = defaultdict(list)
    skip = []
    n_ann = 0
    for item in db.work_items:
        mut = item.mutations[0]
        module = str(mut.module_path)
        if module not in spans_cache:
            spans_cache[module] = annotation_spans(module)
        start = tuple(mut.start_pos)
        if any(a <= start < b for a, b in spans_cache[module]):
            skip.append(item.job_id)
            n_ann += 1
            continue
        by_module[module].append(item.job_id)
    print(f"{n_ann} mutants inside lazy type annotations skipped (equivalent)")
    for module, ids in sorted(by_module.items()):
        ids.sort()
        keep = set(ids) if n <= 0 else set(rng.sample(ids, min(n, len(ids))))
        skip += [i for i in ids if i not in keep]
        print(f"{module}: {len(ids)} mutants eligible, {len(keep)} sampled")
    if skip:
        db.set_multiple_results(skip, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
