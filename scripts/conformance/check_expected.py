#!/usr/bin/env python3
"""Gate `kiln verify` conformance results against the expected-failures list.

usage: check_expected.py RESULTS.tsv EXPECTED.txt [--update]

RESULTS.tsv is what `kiln verify --results` writes, one row per case:

    group<TAB>case<TAB>status<TAB>message        status: pass, fail or skip

EXPECTED.txt (Tests/Conformance/expected-failures.txt) names every case that
is allowed not to pass, one per line, with a one-line reason:

    group/case<TAB>reason                         '#' starts a comment line

The check fails (exit 1) when
  * a case fails or is skipped and is not listed       (a regression, or new)
  * a listed case passes                                (remove it: the list
                                                          only ever shrinks)
  * a listed case does not appear in the results        (renamed or lost)
and prints a passed/failed/skipped/total table per group either way.

--update rewrites EXPECTED.txt from the results: every case that did not pass
is listed, keeping the existing reason of cases that were already listed and
taking the first line of the verify message (about 150 characters) for new
ones.  Comment lines at the top of the file are kept.  Exit status 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter, OrderedDict

STATUSES = ("pass", "fail", "skip")
GROUP_ORDER = ["node", "light", "simple", "pytorch-converted", "pytorch-operator"]
REASON_LIMIT = 150
DEFAULT_HEADER = [
    "# Conformance cases that are allowed not to pass `kiln verify`, one per line:",
    "#   group/case<TAB>one-line reason",
    "# scripts/conformance/check_expected.py fails CI when a case not listed here",
    "# fails or is skipped, or when a listed case passes (so this list only shrinks).",
    "# Regenerate with: scripts/conformance/check_expected.py RESULTS.tsv THIS_FILE --update",
]


class InputError(Exception):
    pass


def one_line(text: str, limit: int = REASON_LIMIT) -> str:
    line = " ".join(text.split())
    if len(line) > limit:
        line = line[: limit - 3].rstrip() + "..."
    return line


def read_results(path: str) -> OrderedDict[str, tuple[str, str, str]]:
    """key 'group/case' -> (group, status, message), in file order."""
    results: OrderedDict[str, tuple[str, str, str]] = OrderedDict()
    problems = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split("\t")
            if len(fields) < 3:
                problems.append(f"{path}:{lineno}: expected group<TAB>case<TAB>status<TAB>message, got {line!r}")
                continue
            group, case, status = fields[0].strip(), fields[1].strip(), fields[2].strip().lower()
            message = " ".join(fields[3:]).strip()
            if status not in STATUSES:
                problems.append(f"{path}:{lineno}: unknown status {fields[2]!r} (want pass, fail or skip)")
                continue
            key = f"{group}/{case}"
            if key in results:
                problems.append(f"{path}:{lineno}: {key} appears more than once")
                continue
            results[key] = (group, status, message)
    if problems:
        raise InputError("\n".join(problems))
    return results


def read_expected(path: str) -> tuple[list[str], OrderedDict[str, str]]:
    """(leading comment lines, key -> reason)."""
    header: list[str] = []
    listed: OrderedDict[str, str] = OrderedDict()
    problems = []
    in_header = True
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            stripped = line.strip()
            if stripped.startswith("#") or not stripped:
                if in_header and stripped:
                    header.append(line)
                continue
            in_header = False
            key, _, reason = line.partition("\t")
            key = key.strip()
            if "/" not in key or " " in key:
                problems.append(f"{path}:{lineno}: expected group/case<TAB>reason, got {line!r}")
                continue
            if key in listed:
                problems.append(f"{path}:{lineno}: {key} is listed more than once")
                continue
            listed[key] = reason.strip()
    if problems:
        raise InputError("\n".join(problems))
    return header, listed


def group_sort_key(group: str) -> tuple[int, str]:
    return (GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER), group)


def print_table(results: OrderedDict[str, tuple[str, str, str]], listed: OrderedDict[str, str]) -> None:
    counts: dict[str, Counter] = {}
    for key, (group, status, _message) in results.items():
        c = counts.setdefault(group, Counter())
        c[status] += 1
        c["total"] += 1
        if key in listed:
            c["listed"] += 1
    columns = ["passed", "failed", "skipped", "total", "pass %", "listed"]
    width = max([len("group"), len("total")] + [len(g) for g in counts])
    print(f"{'group':<{width}}  " + "  ".join(f"{c:>7}" for c in columns))
    print("-" * (width + 2 + 9 * len(columns) - 2))
    overall = Counter()

    def row(name: str, c: Counter) -> str:
        pct = 100.0 * c["pass"] / c["total"] if c["total"] else 0.0
        cells = [c["pass"], c["fail"], c["skip"], c["total"], f"{pct:.1f}", c["listed"]]
        return f"{name:<{width}}  " + "  ".join(f"{v:>7}" for v in cells)

    for group in sorted(counts, key=group_sort_key):
        print(row(group, counts[group]))
        overall.update(counts[group])
    print("-" * (width + 2 + 9 * len(columns) - 2))
    print(row("total", overall))


def check(results, listed) -> tuple[list[str], list[str], list[str]]:
    unexpected = [
        f"{key}\t{status}: {one_line(message) or '(no message)'}"
        for key, (_g, status, message) in results.items()
        if status != "pass" and key not in listed
    ]
    now_passing = [key for key in listed if key in results and results[key][1] == "pass"]
    missing = [key for key in listed if key not in results]
    return unexpected, now_passing, missing


def update(path: str, header: list[str], results, listed) -> None:
    entries = []
    for key, (group, status, message) in results.items():
        if status == "pass":
            continue
        reason = listed.get(key) or one_line(message) or f"{status} (no message)"
        entries.append((group_sort_key(group), key, reason))
    entries.sort()
    lines = (header or DEFAULT_HEADER) + [f"{key}\t{reason}" for _gk, key, reason in entries]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    kept = sum(1 for _gk, key, _r in entries if key in listed)
    dropped = sum(1 for key in listed if key not in {k for _g, k, _r in entries})
    print(f"updated {path}: {len(entries)} cases listed ({len(entries) - kept} added, {dropped} removed, {kept} kept)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=None
    )
    parser.add_argument("results", help="TSV written by `kiln verify --results`")
    parser.add_argument("expected", help="expected-failures list (Tests/Conformance/expected-failures.txt)")
    parser.add_argument("--update", action="store_true", help="rewrite EXPECTED from RESULTS instead of checking")
    args = parser.parse_args()

    try:
        results = read_results(args.results)
        if os.path.exists(args.expected):
            header, listed = read_expected(args.expected)
        elif args.update:
            header, listed = [], OrderedDict()
        else:
            raise InputError(f"{args.expected}: not found (create it with --update)")
    except (InputError, OSError) as e:
        print(f"check_expected: {e}", file=sys.stderr)
        return 2
    if not results:
        print(f"check_expected: {args.results} has no results", file=sys.stderr)
        return 2

    print_table(results, listed)
    print()
    if args.update:
        update(args.expected, header, results, listed)
        return 0

    unexpected, now_passing, missing = check(results, listed)
    passed = sum(1 for _g, s, _m in results.values() if s == "pass")
    if unexpected:
        print(f"UNEXPECTED: {len(unexpected)} case(s) did not pass and are not in {args.expected}:")
        for line in unexpected:
            print(f"  {line}")
        print()
    if now_passing:
        print(f"NOW PASSING: {len(now_passing)} case(s) listed in {args.expected} pass; remove them:")
        for key in now_passing:
            print(f"  {key}")
        print()
    if missing:
        print(f"MISSING: {len(missing)} case(s) listed in {args.expected} have no result:")
        for key in missing:
            print(f"  {key}")
        print()
    if unexpected or now_passing or missing:
        print(f"To accept the current results: {sys.argv[0]} {args.results} {args.expected} --update")
        print(
            f"conformance check FAILED: {len(unexpected)} unexpected, {len(now_passing)} now passing, "
            f"{len(missing)} missing ({passed} of {len(results)} cases pass)"
        )
        bad = len(unexpected) + len(now_passing) + len(missing)
        # The closing line counts expectations: a case meets its expectation when it passes and is not listed,
        # or fails and is listed.
        print(f"expectations: {len(results) - len(unexpected) - len(now_passing)} passed, {bad} failed")
        return 1
    print(
        f"conformance check OK: {passed} of {len(results)} cases pass, "
        f"{len(results) - passed} listed as expected failures"
    )
    print(f"expectations: {len(results)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
