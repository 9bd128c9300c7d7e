package org.memsr.core;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** The vectors written by android_demo/make_test_vectors.py; path in system property memsr.vectors. */
final class Vectors {
    private static Map<String, Object> cached;

    private Vectors() {
    }

    static synchronized Map<String, Object> all() throws IOException {
        if (cached == null) {
            String path = System.getProperty("memsr.vectors");
            if (path == null) {
                throw new IllegalStateException("set -Dmemsr.vectors=PATH (run_core_tests.sh does)");
            }
            String text = new String(Files.readAllBytes(Paths.get(path)), StandardCharsets.UTF_8);
            cached = Json.asObject(Json.parse(text), "vectors");
        }
        return cached;
    }

    static List<Map<String, Object>> cases(String key) throws IOException {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Object o : Json.asList(all().get(key), key)) {
            out.add(Json.asObject(o, key + " case"));
        }
        if (out.isEmpty()) {
            throw new IllegalStateException("no " + key + " vectors");
        }
        return out;
    }

    static int i(Map<String, Object> m, String k) {
        return Json.asInt(m.get(k), k);
    }

    static long l(Map<String, Object> m, String k) {
        return Json.asLong(m.get(k), k);
    }
}
