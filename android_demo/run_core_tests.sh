#!/usr/bin/env bash
# Build and test the Android demo's platform-free Java core on a plain JDK (no Android SDK, no Gradle):
# regenerate the test vectors from the Python spec, compile core + tests with javac, run JUnit 4.
#   PYTHON   python with the memsr dependencies (default: the repo's .venv if present, else `python`)
#   JUNIT_JAR, HAMCREST_JAR   default /usr/share/java/junit4.jar and hamcrest-core.jar (apt: junit4)
#   ORG_JSON_JAR   org.json for the core (Android has it built in); default /usr/share/java/com.android.json.jar
#                  (apt: libandroid-json-java, Android 10's own org.json from AOSP libcore, i.e. the app's minSdk 29)
#   MEMSR_SKIP_EXPORT=1       skip exporting a tiny student to TFLite (its sidecars are checked in Java)
# Exit status is non-zero when anything fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
build="$here/build/core-tests"

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$repo/.venv/bin/python" ]]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python; fi
fi
JUNIT_JAR="${JUNIT_JAR:-/usr/share/java/junit4.jar}"
HAMCREST_JAR="${HAMCREST_JAR:-/usr/share/java/hamcrest-core.jar}"
ORG_JSON_JAR="${ORG_JSON_JAR:-/usr/share/java/com.android.json.jar}"
for jar in "$JUNIT_JAR" "$HAMCREST_JAR" "$ORG_JSON_JAR"; do
    if [[ ! -f "$jar" ]]; then
        echo "error: $jar: not found (apt-get install -y junit4 libandroid-json-java, or set JUNIT_JAR /" \
             "HAMCREST_JAR / ORG_JSON_JAR)" >&2
        exit 2
    fi
done
command -v javac >/dev/null || { echo "error: javac: not found (install a JDK 17)" >&2; exit 2; }

rm -rf "$build"
mkdir -p "$build/classes" "$build/test-classes"

# MEMSR_SKIP_EXPORT=1 leaves out the real exporter round trip (a tiny student exported to TFLite, ~20 s).
export_args=(--export-dir "$build/export")
[[ "${MEMSR_SKIP_EXPORT:-0}" == 1 ]] && export_args=()
"$PYTHON" "$here/make_test_vectors.py" "$build/vectors.json" "${export_args[@]}"

# --release 11: the core must not use newer library APIs (Android's runtime lacks many of them).
find "$here/core/src/main/java" -name '*.java' > "$build/main-sources.txt"
javac --release 11 -Xlint:all -Werror -d "$build/classes" -cp "$ORG_JSON_JAR" @"$build/main-sources.txt"

find "$here/core/src/test/java" -name '*.java' > "$build/test-sources.txt"
javac --release 17 -d "$build/test-classes" -cp "$build/classes:$ORG_JSON_JAR:$JUNIT_JAR:$HAMCREST_JAR" \
    @"$build/test-sources.txt"

tests=$(cd "$build/test-classes" && find . -name '*Test.class' | sed 's|^\./||; s|\.class$||; s|/|.|g' | sort)
# src/test/resources on the class path: the sidecar contract shared with tests/test_sidecar_contract.py
java -Djava.awt.headless=true -Dmemsr.vectors="$build/vectors.json" \
    -cp "$build/classes:$build/test-classes:$here/core/src/test/resources:$ORG_JSON_JAR:$JUNIT_JAR:$HAMCREST_JAR" \
    org.junit.runner.JUnitCore $tests
