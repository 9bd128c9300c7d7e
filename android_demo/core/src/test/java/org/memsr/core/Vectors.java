package org.memsr.core;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;

/** The vectors written by android_demo/make_test_vectors.py; path in system property memsr.vectors. */
final class Vectors {
    private static JSONObject cached;

    private Vectors() {
    }

    /** Parsed with the same org.json reader (and strictness checks) as the app's sidecars. */
    static synchronized JSONObject all() throws IOException {
        if (cached == null) {
            String path = System.getProperty("memsr.vectors");
            if (path == null) {
                throw new IllegalStateException("set -Dmemsr.vectors=PATH (run_core_tests.sh does)");
            }
            String text = new String(Files.readAllBytes(Paths.get(path)), StandardCharsets.UTF_8);
            cached = JsonValues.asObject(JsonValues.parse(text), "vectors");
        }
        return cached;
    }

    static List<JSONObject> cases(String key) throws IOException {
        List<JSONObject> out = new ArrayList<>();
        JSONArray a = JsonValues.asArray(all().opt(key), key);
        for (int i = 0; i < a.length(); i++) {
            out.add(JsonValues.asObject(a.opt(i), key + " case"));
        }
        if (out.isEmpty()) {
            throw new IllegalStateException("no " + key + " vectors");
        }
        return out;
    }

    static int i(JSONObject m, String k) {
        return JsonValues.asInt(m.opt(k), k);
    }

    static long l(JSONObject m, String k) {
        return JsonValues.asLong(m.opt(k), k);
    }
}
