"""Java source stubs of the Android API and the AndroidX libraries the demo app uses, for compiling the app on a
plain JDK (no Android SDK here). Run by ../run_app_compile_check.sh; standard library only.

Sources, in order of trust (../README.md, section 4, says what the check cannot catch):
  * AOSP's API signature file of Android 10 (API 29), api/current.txt from Debian's source package
    android-platform-frameworks-base: exact kinds, modifiers, generics, primitive types, throws and constants.
  * chaquopy-stubs-android (API 35) and chaquopy-stubs-androidx-* (Python type stubs, PyPI): the members added
    after API 29, and all of AndroidX. Their parameters keep Java's primitive types; their returns do not
    (long/short/byte read as int, double as float), nor throws, access or class kinds.
  * @nativescript/types-android (npm): for the classes that AOSP 29 lacks, which are interfaces or abstract and
    which supertypes are extended or implemented.
  * restored.txt beside this file: the few AndroidX facts that none of the packages gives and the app relies on.
java.* and javax.* come from the JDK that compiles the app; they get no stubs.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

PY_KEYWORDS = {"print", "is", "in", "from", "import", "def", "class", "assert", "lambda", "global", "pass",
               "not", "and", "or", "with", "yield", "del", "raise", "exec", "None", "True", "False"}
PRIMS = {"boolean", "byte", "char", "short", "int", "long", "float", "double", "void"}
# chaquopy's markers of a Java primitive parameter type
JPRIM = {"java.jboolean": "boolean", "java.jbyte": "byte", "java.jchar": "char", "java.jshort": "short",
         "java.jint": "int", "java.jlong": "long", "java.jfloat": "float", "java.jdouble": "double",
         "java.jvoid": "java.lang.Void"}
# what a Python return annotation leaves of the Java type: the narrowest reading (no false errors, see README)
PYRET = {"int": "int", "float": "float", "bool": "boolean", "str": "java.lang.String", "None": "void"}
MODS = {"public", "protected", "private", "static", "final", "abstract", "synchronized", "native", "default",
        "transient", "volatile", "strictfp", "sealed"}
BODY = '{ throw new RuntimeException("Stub!"); }'


@dataclass
class Member:
    kind: str            # ctor | method | field | enum
    name: str
    key: tuple           # erased parameter types, '?' for a type variable
    java: str            # the declaration (without body)
    static: bool = False
    abstract: bool = False
    source: str = ""


@dataclass
class Cls:
    fqn: str             # android.view.View.OnClickListener
    pkg: str
    kind: str = "class"  # class | interface | enum | @interface
    mods: list = field(default_factory=lambda: ["public"])
    tparams: str = ""
    extends: list = field(default_factory=list)
    implements: list = field(default_factory=list)
    members: list = field(default_factory=list)
    source: str = ""

    @property
    def rel(self) -> str:  # Outer.Inner
        return self.fqn[len(self.pkg) + 1:]


# ---------------------------------------------------------------------------------------------- type text utils
def split_top(s: str, seps: str) -> list[str]:
    """Split at separators outside <>, (), []."""
    out, depth, cur = [], 0, []
    for ch in s:
        if ch in "<([":
            depth += 1
        elif ch in ">)]":
            depth -= 1
        if ch in seps and depth == 0:
            if "".join(cur).strip():
                out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


ANNOT = re.compile(r"@(?!interface\b)[\w.]+(\((?:[^()]|\([^()]*\))*\))?\s*")


def strip_annotations(s: str) -> str:
    return ANNOT.sub("", s).strip()


def erase(t: str, tvars: set) -> str:
    t = strip_annotations(t).replace("...", "[]")
    base = re.sub(r"<.*>", "", t).strip()
    dims = base.count("[]")
    name = base.replace("[]", "").strip()
    if name in tvars or name == "?":
        name = "?"
    elif name not in PRIMS and "." not in name:
        name = "java.lang." + name
    return name + "[]" * dims


def tparam_names(tp: str) -> set:
    if not tp:
        return set()
    return {p.split()[0] for p in split_top(tp.strip()[1:-1], ",")}


# ------------------------------------------------------------------------------------------ AOSP current.txt
def parse_current(path: Path) -> dict[str, Cls]:
    classes: dict[str, Cls] = {}
    pkg, cur = None, None
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith("//"):
            continue
        if s.startswith("package ") and s.endswith("{"):
            pkg = s.split()[1]
            continue
        if s == "}":
            cur = None
            continue
        if cur is None and s.endswith("{"):
            cur = _current_class(pkg, strip_annotations(s[:-1]))
            classes[cur.fqn] = cur
            continue
        if cur is not None:
            m = _current_member(cur, s)
            if m is not None:
                cur.members.append(m)
    return classes


def _current_class(pkg: str, head: str) -> Cls:
    toks, mods = head.split(), []
    while toks[0] in MODS:
        mods.append(toks.pop(0))
    kind = toks.pop(0)
    rest = " ".join(toks)
    m = re.match(r"([\w.]+)(<.*?>)?(?:\s+(extends|implements)\s+(.*))?$", rest)
    name, tp = m.group(1), m.group(2) or ""
    if tp:  # balanced type parameters (may nest)
        i = rest.index("<")
        depth = 0
        for j in range(i, len(rest)):
            depth += rest[j] == "<"
            depth -= rest[j] == ">"
            if depth == 0:
                tp, tail = rest[i:j + 1], rest[j + 1:].strip()
                break
    else:
        tail = rest[len(name):].strip()
    ext, impl = [], []
    parts = re.split(r"\b(extends|implements)\b", tail)
    mode = None
    for p in parts:
        if p in ("extends", "implements"):
            mode = p
        elif p.strip():
            (ext if mode == "extends" else impl).extend(split_top(p.strip(), " ,"))
    if kind == "interface":  # `interface X extends A B`
        impl, ext = ext + impl, []
    return Cls(fqn=f"{pkg}.{name}", pkg=pkg, kind=kind, mods=mods, tparams=tp, extends=ext, implements=impl,
               source="aosp-29")


def _scan_type(s: str, i: int) -> int:
    """End index of the type that starts at s[i] (generics, arrays, varargs)."""
    depth = 0
    while i < len(s):
        ch = s[i]
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == " " and depth == 0:
            break
        i += 1
    return i


def _current_member(c: Cls, s: str) -> Member | None:
    kw, _, rest = s.partition(" ")
    rest = strip_annotations(rest.rstrip(";"))
    if kw in ("field", "enum_constant"):
        rest = re.sub(r";\s*//.*$", "", rest)
        decl, _, value = rest.partition(" = ")
        toks = decl.split()
        name, mods, typ = toks[-1], [t for t in toks[:-2] if t in MODS], toks[-2]
        if kw == "enum_constant":
            return Member("enum", name, (), name, static=True, source="aosp-29")
        if value:
            value = _java_constant(typ, value.strip())
        java = " ".join(mods + [typ, name]) + (f" = {value}" if value else "")
        return Member("field", name, (), java, static="static" in mods, source="aosp-29")
    if kw not in ("ctor", "method"):
        return None
    i, mods = 0, []
    toks = rest.split(" ")
    while toks and toks[0] in MODS:
        mods.append(toks.pop(0))
    rest = " ".join(toks)
    tp = ""
    if rest.startswith("<"):
        j = 0
        depth = 0
        for j, ch in enumerate(rest):
            depth += ch == "<"
            depth -= ch == ">"
            if depth == 0:
                break
        tp, rest = rest[:j + 1], rest[j + 1:].strip()
    if kw == "method":
        i = _scan_type(rest, 0)
        ret, rest = rest[:i], rest[i:].strip()
    else:
        ret = None
    name = rest[:rest.index("(")]
    depth, j = 0, rest.index("(")
    for j in range(rest.index("("), len(rest)):
        depth += rest[j] == "("
        depth -= rest[j] == ")"
        if depth == 0:
            break
    params = split_top(rest[rest.index("(") + 1:j], ",")
    tail = rest[j + 1:].strip()
    tvars = tparam_names(tp) | tparam_names(c.tparams) | _outer_tvars(c)
    plist = ", ".join(f"{p} p{k}" for k, p in enumerate(params))
    key = tuple(erase(p, tvars) for p in params)
    if kw == "ctor":
        simple = c.rel.split(".")[-1]
        java = " ".join(mods + ([tp] if tp else []) + [f"{simple}({plist})"]) + (f" {tail}" if tail else "")
        return Member("ctor", simple, key, java, source="aosp-29")
    if c.kind == "@interface":
        mods = [m for m in mods if m not in ("abstract",)]
    java = " ".join(mods + ([tp] if tp else []) + [ret, f"{name}({plist})"]) + (f" {tail}" if tail else "")
    return Member("method", name, key, java, static="static" in mods,
                  abstract="abstract" in mods or (c.kind == "@interface"), source="aosp-29")


_OUTER_TVARS: dict[str, set] = {}


def _outer_tvars(c: Cls) -> set:
    return _OUTER_TVARS.get(c.fqn, set())


def _java_constant(typ: str, v: str) -> str:
    if typ == "char" and re.fullmatch(r"-?\d+", v):
        return f"(char) {v}"
    if typ in ("float", "double"):
        suffix = "f" if typ == "float" else ""
        if v in ("NaN", "(0.0f/0.0f)", "(0.0/0.0)"):
            return f"0.0{suffix} / 0.0{suffix}"
        if "Infinity" in v:
            return ("-" if v.startswith("-") else "") + f"1.0{suffix} / 0.0{suffix}"
    if typ == "byte":
        return f"(byte) {v}"
    if typ == "short":
        return f"(short) {v}"
    return v


# ------------------------------------------------------------------------------------------ chaquopy .pyi
TYPEVAR = re.compile(r"^\s*(\w+)\s*=\s*typing\.TypeVar\('\w+'(?:,\s*bound=([\w.\[\], ]+))?\)\s*#\s*<(\w+)>")


def parse_chaquopy(root: Path, packages: tuple) -> dict[str, Cls]:
    classes: dict[str, Cls] = {}
    for pyi in sorted(root.rglob("__init__.pyi")):  # one folder per wheel: wheels share module paths
        parts = pyi.relative_to(root).parts[:-1]
        while not parts[0].endswith("-stubs"):
            parts = parts[1:]
        top = parts[0].replace("-stubs", "")
        pkg = ".".join((top,) + tuple(p[:-1] if p.endswith("_") and p[:-1] in PY_KEYWORDS else p
                                      for p in parts[1:]))
        if not pkg.startswith(packages):
            continue
        _parse_pyi(pyi.read_text(), pkg, classes)
    return classes


def _parse_pyi(text: str, pkg: str, classes: dict):
    stack: list[tuple[int, Cls]] = []
    tvars: dict[str, tuple[str, str]] = {}
    deco: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue
        ind = len(line) - len(line.lstrip())
        s = line.strip()
        while stack and stack[-1][0] >= ind:
            stack.pop()
        m = TYPEVAR.match(line)
        if m:
            tvars[m.group(1)] = (m.group(3), m.group(2) or "")
            continue
        if s.startswith("@"):
            deco.append(s)
            continue
        m = re.match(r"class (\w+)\((.*)\):", s)
        if m:
            outer = stack[-1][1] if stack else None
            fqn = f"{outer.fqn}.{m.group(1)}" if outer else f"{pkg}.{m.group(1)}"
            c = Cls(fqn=fqn, pkg=pkg, source="chaquopy", mods=["public", "static"] if outer else ["public"])
            bases = split_top(m.group(2), ",")
            generic = [b for b in bases if b.startswith("typing.Generic[")]
            if generic:
                names = split_top(generic[0][len("typing.Generic["):-1], ",")
                tps = []
                for n in names:
                    jn, bound = tvars.get(n, (n, ""))
                    tps.append(jn + (f" extends {_pytype(bound, pkg, tvars)}" if bound else ""))
                c.tparams = "<" + ", ".join(tps) + ">"
            c.extends = [_pytype(b, pkg, tvars) for b in bases if not b.startswith("typing.")]
            if any(b.startswith("java.lang.Enum[") for b in bases):
                c.kind = "enum"
            elif any(b == "java.lang.annotation.Annotation" for b in bases):
                c.kind = "@interface"
            if fqn in classes:  # the same class in two wheels (a package split): one class, members of both
                c = classes[fqn]
            classes[fqn] = c
            stack.append((ind, c))
            deco = []
            continue
        if not stack:
            deco = []
            continue
        c = stack[-1][1]
        m = re.match(r"def (\w+)\((.*)\)\s*->\s*(.+?):\s*\.\.\.$", s)
        if m:
            name, params, ret = m.groups()
            static = "@staticmethod" in deco
            deco = []
            plist = [p.strip() for p in split_top(params, ",") if p.strip() not in ("self", "/", "cls")]
            ptypes = []
            for p in plist:
                pn, _, pt = p.partition(":")
                ptypes.append(_pytype(pt.strip(), pkg, tvars, param=True))
            mtv = sorted({tvars[t][0] for t in tvars if re.search(rf"\b{t}\b", params + ret)}
                         - tparam_names(c.tparams))
            tp = ""
            if mtv:
                tp = "<" + ", ".join(
                    n + (f" extends {_pytype(tvars[k][1], pkg, tvars)}" if tvars[k][1] else "")
                    for n in mtv for k in tvars if tvars[k][0] == n and re.search(rf"\b{k}\b", params + ret)
                ) + ">"
                tp = "<" + ", ".join(dict.fromkeys(split_top(tp[1:-1], ","))) + ">"
            alltv = tparam_names(tp) | tparam_names(c.tparams) | _class_tvars(c, classes)
            key = tuple(erase(t, alltv) for t in ptypes)
            pl = ", ".join(f"{t} p{k}" for k, t in enumerate(ptypes))
            if name == "__init__":
                simple = c.fqn.split(".")[-1]
                c.members.append(Member("ctor", simple, key, f"public {simple}({pl})", source="chaquopy"))
            else:
                rt = _pytype(ret, pkg, tvars, ret=True)
                mods = ["public"] + (["static"] if static else [])
                java = " ".join(mods + ([tp] if tp else []) + [rt, f"{name}({pl})"])
                c.members.append(Member("method", name, key, java, static=static, source="chaquopy"))
            continue
        m = re.match(r"(\w+): (.+) = \.\.\.$", s)
        if m:
            deco = []
            name, t = m.group(1), m.group(2)
            cv = t.startswith("typing.ClassVar[")
            if cv:
                t = t[len("typing.ClassVar["):-1]
            jt = _pytype(t, pkg, tvars, ret=True)
            if c.kind == "enum" and jt == c.fqn:
                c.members.append(Member("enum", name, (), name, static=True, source="chaquopy"))
            else:
                mods = ["public"] + (["static"] if cv else [])
                c.members.append(Member("field", name, (), " ".join(mods + [jt, name]), static=bool(cv),
                                        source="chaquopy"))


def _class_tvars(c: Cls, classes: dict) -> set:
    out = set()
    parts = c.fqn.split(".")
    for i in range(len(parts), 0, -1):
        o = classes.get(".".join(parts[:i]))
        if o is not None:
            out |= tparam_names(o.tparams)
    return out


def _pytype(t: str, pkg: str, tvars: dict, param=False, ret=False) -> str:
    t = t.strip()
    alts = split_top(t, "|")
    if len(alts) > 1:
        for a in alts:
            if a in JPRIM:
                return JPRIM[a]
            if a.startswith("java.chaquopy.JavaArray"):
                return _pytype(a, pkg, tvars, param, ret)
        if "java.lang.String" in alts:
            return "java.lang.String"
        alts = [a for a in alts if a != "None"]
        if any(a == "java.lang.Object" for a in alts):
            return "java.lang.Object"
        return _pytype(alts[0], pkg, tvars, param, ret)
    if t in tvars:
        return tvars[t][0]
    if t in PYRET and (ret or param):
        return PYRET[t]
    if t in JPRIM:
        return JPRIM[t]
    m = re.fullmatch(r"java\.chaquopy\.JavaArrayJ(\w+)", t)
    if m:
        return m.group(1).lower() + "[]"
    if t == "typing.Type":
        return "java.lang.Class<?>"
    if t in ("typing.Any", "typing.Any]"):
        return "java.lang.Object"
    m = re.match(r"([\w.]+)\[(.*)\]$", t)
    if m:
        base, args = m.group(1), split_top(m.group(2), ",")
        if base == "java.chaquopy.JavaArray":
            return _pytype(args[0], pkg, tvars, param=True) + "[]"
        if base in ("typing.Type", "type"):
            return "java.lang.Class<?>"
        jargs = []
        for a in args:
            ja = _pytype(a, pkg, tvars)
            jargs.append("?" if ja == "java.lang.Object" and a == "typing.Any" else _boxed(ja))
        return f"{_qualify(base, pkg)}<{', '.join(jargs)}>"
    return _qualify(t, pkg)


def _boxed(t: str) -> str:
    return {"int": "java.lang.Integer", "long": "java.lang.Long", "boolean": "java.lang.Boolean",
            "float": "java.lang.Float", "double": "java.lang.Double", "java.lang.String": "java.lang.String"}.get(t, t)


def _qualify(name: str, pkg: str) -> str:
    name = ".".join(p[:-1] if p.endswith("_") and p[:-1] in PY_KEYWORDS else p for p in name.split("."))
    if name in PRIMS:
        return name
    if re.match(r"^(java|javax|android|androidx|dalvik|org|kotlin|kotlinx|com)\.", name):
        return name
    return f"{pkg}.{name}"


# ------------------------------------------------------------------------------------------ NativeScript .d.ts
def parse_nativescript(paths: list[Path]) -> dict[str, dict]:
    """fqn -> {interface, abstract, extends, implements} from `export [abstract] class` lines."""
    out: dict[str, dict] = {}
    for p in paths:
        lines = p.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"\s*export (abstract )?class (\w+)(<.*?>)?\s+extends ([\w.<>, ]+?)(?: implements (.+?))?\s*{",
                         line)
            if not m or i + 1 >= len(lines):
                continue
            fm = re.search(r"java\.lang\.Class<([\w.]+)", lines[i + 1])
            if not fm:
                continue
            fqn = fm.group(1)
            window = "\n".join(lines[i + 2:i + 5])
            out[fqn] = {
                # NativeScript declares an interface as a class whose constructor comment says so
                "interface": " interface with the provided implementation" in window,
                "abstract": bool(m.group(1)),
                "extends": re.sub(r"<.*>", "", m.group(4)).replace("globalAndroid.", "android.").strip(),
                "implements": [re.sub(r"<.*>", "", x).replace("globalAndroid.", "android.").strip()
                               for x in (m.group(5) or "").split(",") if x.strip()],
            }
    return out


# ------------------------------------------------------------------------------------------ restored facts
def parse_restored(path: Path) -> list[tuple[str, str, str]]:
    """Lines `fqn#member protected`, or `fqn method DECLARATION` in AOSP's current.txt form (replaces the
    member of that name and erased parameter types, which must exist)."""
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        target, what = line.split(None, 1)
        fqn, _, member = target.partition("#")
        out.append((fqn, member, what))
    return out


OBJECT_METHODS = {"finalize", "clone", "equals", "hashCode", "toString", "getClass", "notify", "notifyAll", "wait"}


def _in_hierarchy(aosp_all: dict, fqn: str, m: Member, seen=None) -> bool:
    """Whether AOSP 29 declares the member in the class or a supertype (metalava leaves out plain overrides,
    chaquopy lists them: such a member keeps AOSP's access and throws)."""
    seen = seen if seen is not None else set()
    if fqn in seen:
        return False
    seen.add(fqn)
    if m.kind == "method" and m.name in OBJECT_METHODS:
        return True
    c = aosp_all.get(fqn)
    if c is None:
        return False
    if any(_same(m, x) for x in c.members):
        return True
    return any(_in_hierarchy(aosp_all, _resolve(re.sub(r"<.*>", "", b)), m, seen)
               for b in c.extends + c.implements)


def _resolve(name: str) -> str:
    """current.txt writes java.lang types by simple name."""
    return name if "." in name else "java.lang." + name


def merge(aosp: dict, chq: dict, ns: dict, restored: list, jdk_interfaces: set, stats: dict,
          aosp_all: dict) -> dict[str, Cls]:
    out: dict[str, Cls] = {}
    for fqn, c in aosp.items():
        out[fqn] = c
    for fqn, c in chq.items():
        if fqn in out:
            a = out[fqn]
            for m in c.members:
                if m.kind == "ctor" and not any(_same(m, x) for x in a.members) or \
                        m.kind == "method" and not _in_hierarchy(aosp_all, fqn, m):
                    if a.kind == "interface" and m.kind == "method" and not m.static:
                        m.java = m.java.replace("public ", "public default ", 1)
                    a.members.append(m)
                    stats["members_after_29"] += 1
                elif m.kind in ("field", "enum") and not any(x.name == m.name for x in a.members):
                    a.members.append(m)
                    stats["members_after_29"] += 1
            continue
        out[fqn] = c
    known_iface = {f for f, c in out.items() if c.kind == "interface"} | jdk_interfaces
    for fqn, c in out.items():
        if c.source != "chaquopy":
            continue
        info = ns.get(fqn)
        if info is not None:
            stats["kinds_from_nativescript"] += 1
            if info["interface"] and c.kind == "class":
                c.kind = "interface"
            if info["abstract"] and c.kind == "class":
                c.mods = c.mods + ["abstract"]
        elif c.kind == "class" and fqn not in aosp_all and _looks_like_interface(c):
            # neither AOSP 29 nor NativeScript knows it (an AndroidX class newer than NativeScript's): a type
            # with no constructor and only instance methods is taken for an interface
            c.kind = "interface"
            stats["kinds_guessed"] += 1
        if c.kind == "interface" or (info is not None and info["interface"]):
            known_iface.add(fqn)
    for fqn, c in out.items():
        if c.source != "chaquopy":
            continue
        info = ns.get(fqn)
        bases = [b for b in c.extends if re.sub(r"<.*>", "", b) != "java.lang.Object"]
        ext, impl = [], []
        for b in bases:
            raw = re.sub(r"<.*>", "", b)
            if c.kind in ("enum", "@interface"):
                if raw.startswith("java.lang.Enum") or raw == "java.lang.annotation.Annotation":
                    continue
                impl.append(b)
            elif c.kind == "interface":
                impl.append(b)
            elif raw in known_iface or (info is not None and raw in info["implements"]):
                impl.append(b)
            else:
                ext.append(b)
        if len(ext) > 1:  # two classes: NativeScript's extends decides, the rest are taken for interfaces
            keep = [b for b in ext if info is not None and re.sub(r"<.*>", "", b) == info["extends"]] or ext[:1]
            impl += [b for b in ext if b not in keep]
            ext = keep
        c.extends, c.implements = ext, impl
        if c.kind == "interface":
            for m in c.members:
                if m.kind == "method" and not m.static and not m.abstract:
                    m.abstract = True
                    m.java = m.java.replace("public ", "public abstract ", 1)
        if "abstract" in c.mods:
            stats["abstract_from_nativescript"] += 1
    # chaquopy marks nothing protected: an override keeps the access of the member it overrides (Java code
    # can widen it, AndroidX's does not), found in AOSP's or the restored declarations of the supertypes
    for fqn, c in out.items():
        if c.source != "chaquopy":
            continue
        for m in c.members:
            if m.kind == "method" and not m.static and _overridden_access(out, c, m) == "protected":
                m.java = m.java.replace("public ", "protected ", 1)
                stats["protected_by_override"] += 1
    for fqn, member, what in restored:
        c = out.get(fqn)
        if c is None:
            raise SystemExit(f"error: restored.txt names {fqn}, which the stub packages lack")
        if what == "protected":
            hits = [m for m in c.members if m.name == member]
            for m in hits:
                m.java = m.java.replace("public ", "protected ", 1)
        else:
            new = _current_member(c, what)
            hits = [m for m in c.members if m.kind == new.kind and m.name == new.name and _same(m, new)]
            for m in hits:
                c.members[c.members.index(m)] = new
            new.source = "restored"
        if not hits:
            raise SystemExit(f"error: restored.txt: {fqn} has no member {member or what}")
        stats["restored"] += 1
    return out


def _overridden_access(classes: dict, c: Cls, m: Member, seen=None) -> str | None:
    seen = seen if seen is not None else set()
    for b in c.extends + c.implements:
        sup = classes.get(re.sub(r"<.*>", "", b))
        if sup is None or sup.fqn in seen:
            continue
        seen.add(sup.fqn)
        for x in sup.members:
            if x.kind == "method" and _same(m, x) and x.source != "chaquopy":
                return "protected" if x.java.startswith("protected") else "public"
        found = _overridden_access(classes, sup, m, seen)
        if found:
            return found
    return None


def _looks_like_interface(c: Cls) -> bool:
    methods = [m for m in c.members if m.kind == "method"]
    return (not any(m.kind == "ctor" for m in c.members) and bool(methods)
            and not any(m.static for m in methods) and not any(m.kind == "field" and not m.static
                                                               for m in c.members))


def _same(a: Member, b: Member) -> bool:
    if a.kind != b.kind or a.name != b.name or len(a.key) != len(b.key):
        return False
    return all(x == y or "?" in (x, y) for x, y in zip(a.key, b.key))


QUALIFIED = re.compile(r"\b([a-z]\w*(?:\.[a-z_]\w*)*)\.[A-Z]\w*")


def drop_unresolvable(classes: dict[str, Cls], jdk_pkgs: tuple, stats: dict):
    """Members whose signature names a package that none of the sources has (Kotlin's runtime, AndroidX
    libraries the app does not use) are left out, rather than stubbed with a missing type."""
    known = {c.pkg for c in classes.values()} | {p[:-1] for p in jdk_pkgs}
    for c in classes.values():
        keep = []
        for m in c.members:
            pkgs = {p for p in QUALIFIED.findall(m.java)}
            if all(p in known for p in pkgs):
                keep.append(m)
            else:
                stats["dropped_members"] += 1
        c.members = keep
        for attr in ("extends", "implements"):
            bases = getattr(c, attr)
            ok = [b for b in bases if all(p in known for p in QUALIFIED.findall(b))]
            stats["dropped_supertypes"] += len(bases) - len(ok)
            setattr(c, attr, ok)


def emit(classes: dict[str, Cls], out: Path, skip: tuple) -> int:
    tops: dict[str, Cls] = {}
    children: dict[str, list] = {}
    for fqn, c in classes.items():
        if fqn.startswith(skip):
            continue
        outer = fqn.rsplit(".", 1)[0]
        if outer in classes:
            children.setdefault(outer, []).append(c)
        else:
            tops[fqn] = c
    n = 0
    for fqn, c in sorted(tops.items()):
        path = out / (c.pkg.replace(".", "/") + "/" + c.rel + ".java")
        path.parent.mkdir(parents=True, exist_ok=True)
        body = _class_text(c, children, classes, top=True)
        path.write_text(f"package {c.pkg};\n\n{body}\n")
        n += 1
    return n


def _class_text(c: Cls, children: dict, classes: dict, top: bool, indent: str = "") -> str:
    mods = [m for m in c.mods if m not in ("sealed",)]
    if top:
        mods = [m for m in mods if m not in ("static", "protected", "private")]
    if c.kind == "interface" or c.kind == "@interface" or c.kind == "enum":
        mods = [m for m in mods if m not in ("abstract", "final")]
    head = " ".join(mods + [c.kind, c.rel.split(".")[-1] + c.tparams])
    if c.extends and c.kind == "class":
        head += " extends " + c.extends[0]
    if c.implements:
        head += (" extends " if c.kind == "interface" else " implements ") + ", ".join(c.implements)
    lines = [indent + head + " {"]
    ind = indent + "    "
    enums = [m for m in c.members if m.kind == "enum"]
    if c.kind == "enum":
        lines.append(ind + ", ".join(m.name for m in enums) + ";")
    iface = c.kind in ("interface", "@interface")
    has_ctor = any(m.kind == "ctor" for m in c.members)
    seen = set()
    for m in c.members:
        if m.kind == "enum":
            continue
        sig = (m.kind, m.name, m.key, m.java if m.kind == "field" else "")
        if sig in seen or (m.kind == "field" and any(s[0] == "field" and s[1] == m.name for s in seen)):
            continue
        seen.add(sig)
        if m.kind == "field":
            lines.append(ind + _field_text(m, iface) + ";")
        elif m.kind == "ctor":
            if iface or c.kind == "enum":
                continue
            lines.append(ind + m.java + " " + BODY)
        else:
            java = m.java
            if c.kind == "enum" and m.name in ("values", "valueOf") and m.static:
                continue
            if iface and (m.abstract or (" default " not in f" {java} " and not m.static)):
                java = java.replace(" native ", " ")
                lines.append(ind + java + ";")
            elif m.abstract and not iface:
                lines.append(ind + java + ";")
            else:
                java = re.sub(r"\bnative\b ", "", java)
                lines.append(ind + java + " " + BODY)
    if not has_ctor and c.kind == "class":
        # no public constructor in the API: a private one, so `new X()` is refused as it is on Android
        lines.append(ind + f"private {c.rel.split('.')[-1]}() {BODY}")
    for child in sorted(children.get(c.fqn, []), key=lambda x: x.fqn):
        lines.append(_class_text(child, children, classes, top=False, indent=ind))
    lines.append(indent + "}")
    return "\n".join(lines)


def _field_text(m: Member, iface: bool) -> str:
    """A field declaration; a final (or interface) field whose value no source gives is set from a call, so that it
    compiles and does not become a compile-time constant the real one may not be."""
    java = m.java
    toks = java.split()
    if " = " in java or ("final" not in toks and not iface):
        return java
    rest = toks[:]
    while rest and rest[0] in MODS:
        rest.pop(0)
    typ = " ".join(rest[:-1])
    if typ in ("int", "long", "float", "double", "boolean"):
        return f"{java} = org.memsr.stubs.Stubs.value{typ.capitalize()}()"
    if typ in ("char", "byte", "short"):
        return f"{java} = ({typ}) org.memsr.stubs.Stubs.valueInt()"
    return f"{java} = ({typ}) org.memsr.stubs.Stubs.value()"


def _in_pkgs(fqn: str, pkgs: tuple) -> bool:
    """Whether the class is in one of the packages (a package, not a class prefix: java.util. vs java.util.zip.)."""
    pkg = ".".join(p for p in fqn.split(".") if p[:1].islower()) + "."
    return pkg in pkgs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--current-txt", type=Path, required=True, help="AOSP api/current.txt (API 29)")
    ap.add_argument("--chaquopy", type=Path, required=True, help="folder with the extracted chaquopy stub wheels")
    ap.add_argument("--nativescript", type=Path, nargs="+", required=True, help="NativeScript .d.ts files")
    ap.add_argument("--restored", type=Path, required=True)
    ap.add_argument("--extra-api", type=Path, action="append", default=[],
                    help="more API in current.txt form (the LiteRT API the app uses)")
    ap.add_argument("--jdk-packages", type=Path, required=True, help="the JDK's package names, one a line")
    ap.add_argument("-o", "--out", type=Path, required=True)
    a = ap.parse_args(argv)
    jdk_pkgs = tuple(sorted({p.strip() + "." for p in a.jdk_packages.read_text().split() if p.strip()},
                            key=len, reverse=True))
    aosp = parse_current(a.current_txt)
    aosp_all = dict(aosp)
    extra = {}
    for p in a.extra_api:
        extra.update(parse_current(p))
    # Android's java.* (same kinds as the JDK's) tells which JDK supertypes are interfaces
    jdk_interfaces = {k for k, v in aosp.items() if v.kind == "interface" and _in_pkgs(k, jdk_pkgs)}
    aosp = {k: v for k, v in aosp.items() if not _in_pkgs(k, jdk_pkgs) and not k.startswith("org.json.")}
    for fqn, c in aosp.items():  # type variables of enclosing classes are in scope of nested ones
        parts = fqn.split(".")
        tv = set()
        for i in range(len(parts) - 1, 0, -1):
            o = aosp.get(".".join(parts[:i]))
            if o is not None and "static" not in c.mods:
                tv |= tparam_names(o.tparams)
        _OUTER_TVARS[fqn] = tv
    chq = parse_chaquopy(a.chaquopy, ("android.", "androidx.", "dalvik.", "org.apache.http.", "org.xmlpull."))
    ns = parse_nativescript(a.nativescript)
    stats = {"members_after_29": 0, "kinds_from_nativescript": 0, "abstract_from_nativescript": 0, "restored": 0,
             "dropped_members": 0, "dropped_supertypes": 0, "protected_by_override": 0, "kinds_guessed": 0}
    merged = merge(aosp, chq, ns, parse_restored(a.restored), jdk_interfaces, stats, aosp_all)
    stubs = a.out / "org/memsr/stubs"
    stubs.mkdir(parents=True, exist_ok=True)
    (stubs / "Stubs.java").write_text(
        "package org.memsr.stubs;\n\n/** Values of fields the stubs do not know (never run). */\n"
        "public final class Stubs {\n    private Stubs() {}\n"
        + "".join(f"    public static {t} value{t.capitalize()}() {{ throw new RuntimeException(\"Stub!\"); }}\n"
                  for t in ("int", "long", "float", "double", "boolean"))
        + "    public static Object value() { throw new RuntimeException(\"Stub!\"); }\n}\n")
    merged = {k: v for k, v in merged.items() if not _in_pkgs(k, jdk_pkgs) and not k.startswith("org.json.")}
    for k, v in extra.items():
        v.source = "extra"
        merged[k] = v
    drop_unresolvable(merged, jdk_pkgs, stats)
    n = emit(merged, a.out, ("org.json.",))
    from_aosp = sum(1 for c in merged.values() if c.source == "aosp-29")
    print(f"stubs: {n} files, {len(merged)} classes ({from_aosp} from AOSP API 29, {len(merged) - from_aosp} from "
          f"chaquopy), {stats['members_after_29']} members from chaquopy added to AOSP 29 classes, "
          f"{stats['kinds_from_nativescript']} class kinds from NativeScript ({stats['kinds_guessed']} more guessed), {stats['restored']} restored facts, "
          f"{stats['protected_by_override']} protected overrides, "
          f"{stats['dropped_members']} members left out (types of packages no source has)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
