"""Condenses openapi-python-client's warnings (read on stdin) to one line per distinct problem.

The generator prints one block per response status and operation, most of them the same few
causes, and names the status by an object address; what a reader needs is which operations
and schemas lose what, and why.
"""

import re
import sys
from collections import Counter

lines = [line.rstrip() for line in sys.stdin]
counts: Counter[str] = Counter()
index = 0
while index < len(lines):
    line = lines[index]
    if line.startswith("WARNING parsing "):
        operation, _, consequence = line.removeprefix("WARNING parsing ").partition(" within ")
        consequence = consequence.partition(". ")[2]  # such as "Endpoint will not be generated."
        detail = next((l for l in lines[index + 1:] if l.strip()), "")
        detail = re.sub(r"<[^>]*object at 0x[0-9a-f]+>", "<status>", detail)
        counts[f"{operation}: {detail} {consequence}".rstrip()] += 1
    elif line.startswith("Unable to process schema "):
        # The block ends at two blank lines in a row.
        block = []
        while index < len(lines) and (lines[index].strip() or (index + 1 < len(lines) and lines[index + 1].strip())):
            if lines[index].strip():
                block.append(lines[index].strip())
            index += 1
        counts[" ".join(block)] += 1
        continue
    index += 1
for problem, count in counts.items():
    print(f"{count:3}x {problem}")
print(f"openapi-python-client: {sum(counts.values())} warnings, {len(counts)} distinct")
