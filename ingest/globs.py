"""Case-insensitive globs over volume-relative POSIX paths ('*' stays in one folder, '**' crosses)."""
from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=512)
def compile_glob(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    p = pattern.strip("/")
    while i < len(p):
        c = p[i]
        if p.startswith("**/", i):
            out.append("(?:[^/]*/)*")
            i += 3
            continue
        if p.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = p.find("]", i)
            if j == -1:
                out.append(re.escape(c))
            else:
                out.append("[" + p[i + 1:j].replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)


def glob_match(pattern: str, rel_path: str) -> bool:
    return compile_glob(pattern).match(rel_path) is not None


def any_match(patterns: list[str], rel_path: str) -> bool:
    return any(glob_match(p, rel_path) for p in patterns)
