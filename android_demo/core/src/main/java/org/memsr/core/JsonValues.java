package org.memsr.core;

import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * Strict JSON parsing into org.json's value classes (part of Android since API 1; on the JDK, Debian's
 * libandroid-json-java, the same code) and typed reads of those values, as strict as Python's {@code read_sidecar}.
 *
 * <p>The text is read by this class's own RFC 8259 parser, not by org.json's JSONTokener, which accepts what
 * Python's json module refuses (comments, single quotes, unquoted words, trailing commas, octal and hex numbers
 * such as {@code 010}, read as 8): a sidecar the Python side refuses must not load on the phone. Like
 * {@code memsr_deploy/formats/tagged_json.py}, NaN / Infinity and numbers out of range are refused naming the
 * field. org.json's own getters coerce ({@code getInt} turns 3.5 into 3 and "3" into 3), so the sidecar checks go
 * through the typed reads below: an integer is an integral number, a string a string.
 */
final class JsonValues {
    private JsonValues() {
    }

    /** One JSON value (JSONObject, JSONArray, String, Boolean, Integer/Long/Double or JSONObject.NULL). */
    static Object parse(String text) {
        Reader r = new Reader(text);
        r.skipSpace();
        Object v = r.value("");
        r.skipSpace();
        if (r.pos < text.length()) {
            throw new MemsrException("invalid JSON: unexpected text after the value at character " + r.pos);
        }
        return v;
    }

    /** A recursive-descent reader of RFC 8259 JSON; {@code path} names the value being read (a.b.0). */
    private static final class Reader {
        private final String s;
        int pos;

        Reader(String s) {
            this.s = s;
        }

        private MemsrException error(String what) {
            return new MemsrException("invalid JSON: " + what + " at character " + pos);
        }

        void skipSpace() {
            while (pos < s.length() && " \t\n\r".indexOf(s.charAt(pos)) >= 0) {
                pos++;
            }
        }

        private boolean take(String word) {
            if (s.startsWith(word, pos)) {
                pos += word.length();
                return true;
            }
            return false;
        }

        Object value(String path) {
            if (pos >= s.length()) {
                throw error("unexpected end of text");
            }
            char c = s.charAt(pos);
            if (c == '{') {
                return object(path);
            }
            if (c == '[') {
                return array(path);
            }
            if (c == '"') {
                return string();
            }
            if (take("true")) {
                return Boolean.TRUE;
            }
            if (take("false")) {
                return Boolean.FALSE;
            }
            if (take("null")) {
                return JSONObject.NULL;
            }
            for (String constant : new String[] {"NaN", "Infinity", "-Infinity"}) {
                if (take(constant)) {  // what Python's json reads, and memsr refuses, naming the field
                    throw new MemsrException("invalid JSON: " + constant + " is not a JSON number in field '"
                            + path + "'");
                }
            }
            if (c == '-' || (c >= '0' && c <= '9')) {
                return number(path);
            }
            throw error("unexpected character '" + c + "'");
        }

        private JSONObject object(String path) {
            JSONObject o = new JSONObject();
            pos++;
            skipSpace();
            if (take("}")) {
                return o;
            }
            while (true) {
                skipSpace();
                if (pos >= s.length() || s.charAt(pos) != '"') {
                    throw error("expected a member name in double quotes");
                }
                String key = string();
                skipSpace();
                if (!take(":")) {
                    throw error("expected ':'");
                }
                skipSpace();
                Object v = value(path.isEmpty() ? key : path + "." + key);
                try {
                    o.put(key, v);  // a repeated name: the last value wins, as in Python
                } catch (JSONException e) {
                    throw error(e.getMessage());
                }
                skipSpace();
                if (take("}")) {
                    return o;
                }
                if (!take(",")) {
                    throw error("expected ',' or '}'");
                }
            }
        }

        private JSONArray array(String path) {
            JSONArray a = new JSONArray();
            pos++;
            skipSpace();
            if (take("]")) {
                return a;
            }
            while (true) {
                skipSpace();
                a.put(value((path.isEmpty() ? "" : path + ".") + a.length()));
                skipSpace();
                if (take("]")) {
                    return a;
                }
                if (!take(",")) {
                    throw error("expected ',' or ']'");
                }
            }
        }

        private String string() {
            StringBuilder b = new StringBuilder();
            pos++;
            while (true) {
                if (pos >= s.length()) {
                    throw error("unterminated string");
                }
                char c = s.charAt(pos++);
                if (c == '"') {
                    return b.toString();
                }
                if (c < 0x20) {
                    throw error("control character in a string");
                }
                if (c != '\\') {
                    b.append(c);
                    continue;
                }
                if (pos >= s.length()) {
                    throw error("unterminated string");
                }
                char e = s.charAt(pos++);
                int k = "\"\\/bfnrt".indexOf(e);
                if (k >= 0) {
                    b.append("\"\\/\b\f\n\r\t".charAt(k));
                } else if (e == 'u' && pos + 4 <= s.length() && s.substring(pos, pos + 4).matches("[0-9a-fA-F]{4}")) {
                    b.append((char) Integer.parseInt(s.substring(pos, pos + 4), 16));
                    pos += 4;
                } else {
                    throw error("bad escape in a string");
                }
            }
        }

        private Object number(String path) {
            int start = pos;
            take("-");
            if (take("0")) {
                if (pos < s.length() && Character.isDigit(s.charAt(pos))) {
                    throw error("leading zero in a number");
                }
            } else if (!digits()) {
                throw error("expected a digit");
            }
            boolean integer = true;
            if (take(".")) {
                integer = false;
                if (!digits()) {
                    throw error("expected a digit after '.'");
                }
            }
            if (pos < s.length() && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
                integer = false;
                pos++;
                if (!take("+")) {
                    take("-");
                }
                if (!digits()) {
                    throw error("expected a digit in the exponent");
                }
            }
            String literal = s.substring(start, pos);
            if (integer) {
                try {
                    long v = Long.parseLong(literal);
                    return v == (int) v ? (Object) Integer.valueOf((int) v) : (Object) Long.valueOf(v);
                } catch (NumberFormatException e) {
                    throw new MemsrException("invalid JSON: integer " + literal + " is out of range in field '"
                            + path + "'");
                }
            }
            double d = Double.parseDouble(literal);
            if (Double.isInfinite(d)) {
                throw new MemsrException("invalid JSON: " + literal + " is out of range in field '" + path + "'");
            }
            return d;
        }

        private boolean digits() {
            int start = pos;
            while (pos < s.length() && s.charAt(pos) >= '0' && s.charAt(pos) <= '9') {
                pos++;
            }
            return pos > start;
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
