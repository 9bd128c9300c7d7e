package org.memsr.core;

import java.util.Iterator;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;
import org.json.JSONTokener;

/**
 * Parsing with org.json (part of Android since API 1; on the JDK, Debian's libandroid-json-java, the same code)
 * and typed reads of its values, as strict as Python's {@code read_sidecar}.
 *
 * <p>org.json's own getters coerce ({@code getInt} turns 3.5 into 3 and "3" into 3), so the sidecar checks go
 * through these instead: an integer is an integral number, a string a string. The parser is also more lenient than
 * Python's json module in places; the two differences that matter for files memsr writes are closed here: text
 * after the value, and NaN / Infinity (org.json refuses them as object members but not inside arrays). Comments,
 * single quotes and unquoted words still parse in org.json; memsr never writes them.
 */
final class JsonValues {
    private JsonValues() {
    }

    /** One JSON value (JSONObject, JSONArray, String, Boolean, Integer/Long/Double or JSONObject.NULL). */
    static Object parse(String text) {
        try {
            JSONTokener t = new JSONTokener(text);
            Object v = t.nextValue();
            if (t.nextClean() != '\0') {
                throw new MemsrException("invalid JSON: unexpected text after the value");
            }
            requireFinite(v);
            return v;
        } catch (JSONException e) {
            throw new MemsrException("invalid JSON: " + e.getMessage());
        }
    }

    private static void requireFinite(Object v) {
        if (v instanceof Double && (((Double) v).isNaN() || ((Double) v).isInfinite())) {
            throw new MemsrException("invalid JSON: " + v + " is not a JSON number");
        } else if (v instanceof JSONObject) {
            JSONObject o = (JSONObject) v;
            for (Iterator<String> it = o.keys(); it.hasNext(); ) {
                requireFinite(o.opt(it.next()));
            }
        } else if (v instanceof JSONArray) {
            JSONArray a = (JSONArray) v;
            for (int i = 0; i < a.length(); i++) {
                requireFinite(a.opt(i));
            }
        }
    }

    /** The member's value, null when it is absent or JSON null (Python's {@code d.get(key)}). */
    static Object get(JSONObject o, String key) {
        Object v = o.opt(key);
        return v == JSONObject.NULL ? null : v;
    }

    static JSONObject asObject(Object v, String what) {
        if (!(v instanceof JSONObject)) {
            throw new MemsrException(what + " must be a JSON object");
        }
        return (JSONObject) v;
    }

    static JSONArray asArray(Object v, String what) {
        if (!(v instanceof JSONArray)) {
            throw new MemsrException(what + " must be a JSON array");
        }
        return (JSONArray) v;
    }

    /** An integral number (1 or 1.0, as Python's int() accepts a float that is whole). */
    static long asLong(Object v, String what) {
        if (v instanceof Integer || v instanceof Long) {
            return ((Number) v).longValue();
        }
        if (v instanceof Double) {
            double d = (Double) v;
            if (d == Math.rint(d) && Math.abs(d) < 9.0e15) {
                return (long) d;
            }
        }
        throw new MemsrException(what + " must be an integer, got " + v);
    }

    static int asInt(Object v, String what) {
        long x = asLong(v, what);
        if (x < Integer.MIN_VALUE || x > Integer.MAX_VALUE) {
            throw new MemsrException(what + " is out of range: " + x);
        }
        return (int) x;
    }

    static double asDouble(Object v, String what) {
        if (v instanceof Integer || v instanceof Long || v instanceof Double) {
            return ((Number) v).doubleValue();
        }
        throw new MemsrException(what + " must be a number, got " + v);
    }

    static String asString(Object v, String what) {
        if (!(v instanceof String)) {
            throw new MemsrException(what + " must be a string, got " + v);
        }
        return (String) v;
    }

    static int[] asIntArray(Object v, String what) {
        JSONArray a = asArray(v, what);
        int[] out = new int[a.length()];
        for (int i = 0; i < out.length; i++) {
            out[i] = asInt(a.opt(i), what + "[" + i + "]");
        }
        return out;
    }
}
