"""Check litert_api.txt against LiteRT's Java sources of the version app/build.gradle names.

    python android_demo/appcheck/check_litert_api.py LITERT_SOURCE_TREE   # a checkout of LiteRT at tag v1.4.1

Every class, constructor, method, field and enum constant that litert_api.txt declares must be declared in the
sources (in the class, or in a superclass whose file sits beside it: Interpreter's InterpreterImpl), with the
same parameter types, return type and throws clause (types compared by simple name). Prints each mismatch;
exit status 1 when there is one. Not run by CI: LiteRT's sources and its Maven artefacts are out of its reach.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_stubs import parse_current, split_top, strip_annotations  # noqa: E402

ROOTS = ("tflite/java/src/main/java", "tflite/delegates/gpu/java/src/main/java")


def simple(t: str) -> str:
    """A type by simple names, no annotations or generics: java.util.Map<Integer, Object> -> Map."""
    t = re.sub(r"\bfinal\s+", "", strip_annotations(t)).replace("...", "[]")
    t = re.sub(r"<.*>", "", t).replace(" ", "")
    dims = t.count("[]")
    return t.replace("[]", "").split(".")[-1] + "[]" * dims


def source_decls(text: str) -> set[tuple]:
    """(kind, name, (param types), return type, throws) of every declaration in a Java source, any class."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)
    out = set()
    pat = re.compile(r"(?:^|[;{}])\s*((?:@\w+(?:\([^)]*\))?\s*|(?:public|protected|private|static|final|abstract|"
                     r"default|synchronized|native)\s+)*)(<[^>]*>\s*)?([\w.<>\[\], ?]+?\s+)?(\w+)\s*\(([^()]*)\)\s*"
                     r"(?:throws\s+([\w., ]+?))?\s*(?=[{;])", re.S)
    for m in pat.finditer(text):
        mods, ret, name, params, throws = m.group(1), m.group(3), m.group(4), m.group(5), m.group(6)
        if name in ("if", "for", "while", "switch", "catch", "return", "new", "synchronized"):
            continue
        ptypes = tuple(simple(" ".join(p.split()[:-1])) for p in split_top(params, ",") if p.strip())
        th = tuple(sorted(simple(x) for x in (throws or "").split(",") if x.strip()))
        out.add(("ctor" if ret is None else "method", name, ptypes, simple(ret) if ret else None, th,
                 "default" in (mods or "")))
    for m in re.finditer(r"(?:public|protected)?\s*(?:static\s+)?(?:final\s+)?[\w.<>\[\]]+\s+([A-Z][A-Z0-9_]*)\s*=",
                         text):
        out.add(("field", m.group(1)))
    for m in re.finditer(r"^\s*([A-Z][A-Z0-9_]*)\s*(?:\([^)]*\))?\s*[,;]", text, re.M):
        out.add(("enum", m.group(1)))
    return out


def main(argv=None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    tree = Path(argv[0])
    api = parse_current(Path(__file__).resolve().parent / "litert_api.txt")
    problems, checked = [], 0
    for fqn, c in sorted(api.items()):
        top = c.rel.split(".")[0]
        files = [tree / r / c.pkg.replace(".", "/") / f"{top}.java" for r in ROOTS]
        files = [f for f in files if f.exists()]
        if not files:
            problems.append(f"{fqn}: no source file {top}.java")
            continue
        text = files[0].read_text()
        # the superclass's file beside it (Interpreter extends InterpreterImpl, folded into it in litert_api.txt)
        for sup in re.findall(rf"class {c.rel.split('.')[-1]}\b[^{{]*?extends\s+(\w+)", text):
            f = files[0].with_name(f"{sup}.java")
            if f.exists():
                text += f.read_text()
        decls = source_decls(text)
        kind = "interface" if c.kind == "interface" else c.kind
        if not re.search(rf"\b(?:{re.escape(kind)})\s+{c.rel.split('.')[-1]}\b", text):
            problems.append(f"{fqn}: not declared as {kind} in {files[0].name}")
        for m in c.members:
            checked += 1
            if m.kind in ("field", "enum"):
                if (m.kind, m.name) not in decls:
                    problems.append(f"{fqn}.{m.name}: no such {m.kind} in the sources")
                continue
            head, _, throws = m.java.partition(" throws ")
            params = tuple(simple(" ".join(p.split()[:-1])) for p in
                           split_top(head[head.index("(") + 1:head.rindex(")")], ","))
            ret = None
            if m.kind == "method":
                before = head[:head.index("(")].split()
                ret = simple(before[-2])
            th = tuple(sorted(simple(x) for x in throws.split(",") if x.strip()))
            hits = [d for d in decls if d[0] == m.kind and d[1] == m.name and d[2] == params]
            if not hits:
                problems.append(f"{fqn}: no {m.name}({', '.join(params)}) in the sources")
            elif not any(d[3] == ret and d[4] == th for d in hits):
                problems.append(f"{fqn}: {m.name}({', '.join(params)}) is {[(d[3], d[4]) for d in hits]} in the "
                                f"sources, not {(ret, th)}")
    for p in problems:
        print(p)
    print(f"{len(api)} classes, {checked} members checked against {tree}: {len(problems)} mismatches")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
