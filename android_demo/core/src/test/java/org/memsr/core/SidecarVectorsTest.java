package org.memsr.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.List;
import java.util.Map;
import org.junit.Test;

public class SidecarVectorsTest {

    @Test
    public void acceptsAndRejectsWhatPythonDoes() throws Exception {
        int ok = 0;
        int bad = 0;
        for (Map<String, Object> c : Vectors.cases("sidecars")) {
            String name = (String) c.get("name");
            String text = (String) c.get("text");
            if (Boolean.TRUE.equals(c.get("ok"))) {
                ok++;
                Sidecar sc = Sidecar.parse(text, name + ".json");
                checkFields(name, Json.asObject(c.get("expect"), "expect"), sc);
            } else {
                bad++;
                String want = (String) c.get("error");
                try {
                    Sidecar.parse(text, name + ".json");
                    fail(name + ": accepted, Python said " + want);
                } catch (MemsrException e) {
                    assertTrue(name, e.getMessage().startsWith(name + ".json: "));
                    // Python's details inside the parentheses of these two come from its JSON parser and
                    // dataclass machinery; the reason before them must agree.
                    if (want.startsWith("sidecar is missing fields") || want.startsWith("sidecar is not valid JSON")) {
                        assertEquals(name, before(want, " ("), before(e.reason(), " ("));
                    } else {
                        assertEquals(name, want, e.reason());
                    }
                }
            }
        }
        assertTrue(ok >= 4 && bad >= 10);
    }

    private static String before(String s, String sep) {
        int i = s.indexOf(sep);
        return i < 0 ? s : s.substring(0, i);
    }

    private static void checkFields(String name, Map<String, Object> e, Sidecar sc) {
        assertEquals(name, e.get("target"), sc.target);
        assertEquals(name, e.get("file"), sc.file);
        assertEquals(name, e.get("precision"), sc.precision);
        assertEquals(name, Vectors.i(e, "scale"), sc.scale);
        assertEquals(name, Vectors.i(e, "halo"), sc.halo);
        assertEquals(name, Vectors.i(e, "tile"), sc.tile);
        assertEquals(name, e.get("file_sha256"), sc.fileSha256());
        if (e.get("input_shape") == null) {
            assertNull(name, sc.inputShape());
        } else {
            assertArrayEquals(name, Json.asIntArray(e.get("input_shape"), "input_shape"), sc.inputShape());
        }
        Map<String, Object> layout = Json.asObject(e.get("layout"), "layout");
        assertEquals(name, layout.get("input"), sc.layoutInput());
        assertEquals(name, layout.get("output"), sc.layoutOutput());
        checkSpec(name + " input", Json.asObject(e.get("input"), "input"), sc.inputSpec());
        checkSpec(name + " output", Json.asObject(e.get("output"), "output"), sc.outputSpec());
        if (e.get("layer_widths") == null) {
            assertNull(name, sc.layerWidths());
        } else {
            assertArrayEquals(name, Json.asIntArray(e.get("layer_widths"), "w"), sc.layerWidths());
        }
    }

    private static void checkSpec(String name, Map<String, Object> e, Sidecar.TensorSpec s) {
        assertEquals(name, e.get("dtype"), s.dtype);
        List<Object> r = Json.asList(e.get("range"), "range");
        assertEquals(name, Json.asDouble(r.get(0), "lo"), s.lo, 0.0);
        assertEquals(name, Json.asDouble(r.get(1), "hi"), s.hi, 0.0);
        Object q = e.get("quant");
        assertEquals(name, q != null, s.quantized);
        if (q != null) {
            Map<String, Object> qm = Json.asObject(q, "quant");
            assertEquals(name, Json.asDouble(qm.get("scale"), "scale"), s.quantScale, 0.0);
            assertEquals(name, Json.asLong(qm.get("zero_point"), "zp"), s.zeroPoint);
        }
    }

    @Test
    public void appChecksTellWhatCannotRunOnThePhone() throws Exception {
        String good = null;
        String onnx = null;
        String int8 = null;
        for (Map<String, Object> c : Vectors.cases("sidecars")) {
            if ("good_x2_fp32".equals(c.get("name"))) {
                good = (String) c.get("text");
            } else if ("good_x3_onnx".equals(c.get("name"))) {
                onnx = (String) c.get("text");
            } else if ("good_x4_int8_fixed".equals(c.get("name"))) {
                int8 = (String) c.get("text");
            }
        }
        Sidecar.parse(good, "g.json").requireRunnableTflite();
        Sidecar.parse(int8, "q.json").requireRunnableTflite();
        try {
            Sidecar.parse(onnx, "m.json").requireRunnableTflite();
            fail("an onnx artefact passed the tflite check");
        } catch (MemsrException e) {
            assertEquals("m.json: artefact target is onnx; the app runs tflite artefacts", e.getMessage());
        }
        String fp16io = good.replace("\"dtype\": \"float32\"", "\"dtype\": \"float16\"");
        try {
            Sidecar.parse(fp16io, "h.json").requireRunnableTflite();
            fail("float16 I/O passed");
        } catch (MemsrException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("float16 is not supported"));
        }
        String unquant = int8.replaceFirst("\"quant\": \\{[^}]*\\}", "\"quant\": null");
        try {
            Sidecar.parse(unquant, "u.json").requireRunnableTflite();
            fail("uint8 without quant passed");
        } catch (MemsrException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("no quant parameters"));
        }
        assertFalse(good.equals(fp16io));
    }
}
