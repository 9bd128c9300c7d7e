package org.memsr.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.Test;

public class JsonTest {

    @Test
    public void parsesTheValueKinds() {
        Map<String, Object> m = Json.asObject(Json.parse(
                " {\"a\": [1, -2, 3.5, 1e3, -0.25E-2], \"b\": {\"c\": null, \"d\": true, \"e\": false},"
                        + " \"s\": \"q\\\"\\\\\\/\\n\\t\\u00e9\\u6f22\", \"big\": 123456789012345678901234567890,"
                        + " \"n\": NaN, \"i\": Infinity, \"j\": -Infinity, \"empty\": [], \"eo\": {}} "), "doc");
        List<Object> a = Json.asList(m.get("a"), "a");
        assertEquals(Arrays.<Object>asList(1L, -2L, 3.5, 1000.0, -0.0025), a);
        Map<String, Object> b = Json.asObject(m.get("b"), "b");
        assertTrue(b.containsKey("c"));
        assertNull(b.get("c"));
        assertEquals(Boolean.TRUE, b.get("d"));
        assertEquals(Boolean.FALSE, b.get("e"));
        assertEquals("q\"\\/\n\t\u00e9\u6f22", m.get("s"));
        assertEquals(1.2345678901234568e29, (Double) m.get("big"), 0.0);
        assertTrue(Double.isNaN((Double) m.get("n")));
        assertEquals(Double.POSITIVE_INFINITY, (Double) m.get("i"), 0.0);
        assertEquals(Double.NEGATIVE_INFINITY, (Double) m.get("j"), 0.0);
        assertEquals(0, Json.asList(m.get("empty"), "e").size());
        assertEquals(0, Json.asObject(m.get("eo"), "eo").size());
    }

    @Test
    public void keepsKeyOrderAndLastDuplicateWins() {
        Map<String, Object> m = Json.asObject(Json.parse("{\"z\":1,\"a\":2,\"z\":3}"), "m");
        assertEquals(Arrays.asList("z", "a"), Arrays.asList(m.keySet().toArray()));
        assertEquals(3L, m.get("z"));
    }

    @Test
    public void rejectsMalformedInputWithAPosition() {
        String[] bad = {"", "{", "[1,]", "{\"a\" 1}", "{a:1}", "[1 2]", "\"abc", "01", "1.", "-", "tru", "[1] x",
            "\"\\x\"", "\"a\nb\"", "{\"a\":1,}", "\"\\u12\""};
        for (String s : bad) {
            try {
                Json.parse(s);
                fail("accepted " + s);
            } catch (MemsrException e) {
                assertTrue(s + " -> " + e.getMessage(), e.getMessage().startsWith("invalid JSON: "));
                assertTrue(e.getMessage(), e.getMessage().contains(" at line "));
            }
        }
    }

    @Test
    public void typedAccessorsNameTheField() {
        assertEquals(3, Json.asInt(3L, "x"));
        assertEquals(3, Json.asInt(3.0, "x"));
        try {
            Json.asInt(3.5, "scale");
            fail();
        } catch (MemsrException e) {
            assertEquals("scale must be an integer, got 3.5", e.getMessage());
        }
        try {
            Json.asInt(1L << 40, "tile");
            fail();
        } catch (MemsrException e) {
            assertTrue(e.getMessage().startsWith("tile is out of range"));
        }
    }
}
