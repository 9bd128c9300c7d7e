package org.memsr.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.json.JSONObject;
import org.junit.Test;

/** What org.json plus JsonValues accept: strict where memsr's files need it, no silent coercion. */
public class JsonValuesTest {

    @Test
    public void parsesTheValueKindsTheSidecarUses() {
        JSONObject m = JsonValues.asObject(JsonValues.parse(
                " {\"a\": [1, -2, 3.5, 1e3, 4000000000], \"b\": {\"c\": null, \"d\": true},"
                        + " \"s\": \"q\\\"\\\\\\/\\n\\t\\u00e9\\u6f22\", \"psnr\": null, \"empty\": []} "), "doc");
        assertEquals(1, JsonValues.asInt(m.optJSONArray("a").opt(0), "a0"));
        assertEquals(-2L, JsonValues.asLong(m.optJSONArray("a").opt(1), "a1"));
        assertEquals(3.5, JsonValues.asDouble(m.optJSONArray("a").opt(2), "a2"), 0.0);
        assertEquals(1000, JsonValues.asInt(m.optJSONArray("a").opt(3), "a3"));  // 1e3 is integral
        assertEquals(4000000000L, JsonValues.asLong(m.optJSONArray("a").opt(4), "a4"));
        JSONObject b = JsonValues.asObject(m.opt("b"), "b");
        assertTrue(b.has("c"));
        assertNull(JsonValues.get(b, "c"));
        assertNull(JsonValues.get(b, "absent"));
        assertEquals(Boolean.TRUE, JsonValues.get(b, "d"));
        assertEquals("q\"\\/\n\t\u00e9\u6f22", JsonValues.asString(m.opt("s"), "s"));
        assertNull(JsonValues.get(m, "psnr"));  // how memsr writes the PSNR of identical outputs
        assertEquals(0, JsonValues.asArray(m.opt("empty"), "e").length());
    }

    @Test
    public void refusesWhatIsNotJsonAsPythonsReaderDoes() {
        String[] bad = {"", "{", "{\"a\" 1}", "\"abc", "[1] x", "{\"a\": 1} {}", "{\"a\": NaN}",
            "{\"a\": Infinity}", "{\"a\": -Infinity}", "[1, NaN]", "{\"r\": [0.0, Infinity]}",
            "{\"v\": {\"psnr\": [1e400]}}"};
        for (String s : bad) {
            try {
                JsonValues.parse(s);
                fail("accepted " + s);
            } catch (MemsrException e) {
                assertTrue(s + " -> " + e.getMessage(), e.getMessage().startsWith("invalid JSON: "));
            }
        }
    }

    @Test
    public void typedReadsDoNotCoerceAsOrgJsonGettersDo() {
        JSONObject o = JsonValues.asObject(JsonValues.parse("{\"x\": 3.5, \"y\": \"3\", \"z\": 3.0}"), "o");
        assertEquals(3, JsonValues.asInt(o.opt("z"), "z"));
        try {
            JsonValues.asInt(o.opt("x"), "scale");
            fail();
        } catch (MemsrException e) {
            assertEquals("scale must be an integer, got 3.5", e.getMessage());
        }
        try {
            JsonValues.asInt(o.opt("y"), "tile");
            fail();
        } catch (MemsrException e) {
            assertEquals("tile must be an integer, got 3", e.getMessage());
        }
        try {
            JsonValues.asInt(1L << 40, "tile");
            fail();
        } catch (MemsrException e) {
            assertTrue(e.getMessage().startsWith("tile is out of range"));
        }
        try {
            JsonValues.asString(o.opt("z"), "dtype");
            fail();
        } catch (MemsrException e) {
            assertEquals("dtype must be a string, got 3.0", e.getMessage());
        }
        assertArrayEquals(new int[] {1, 2}, JsonValues.asIntArray(JsonValues.parse("[1, 2.0]"), "w"));
    }
}
