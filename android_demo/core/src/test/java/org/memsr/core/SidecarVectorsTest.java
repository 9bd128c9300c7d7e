package org.memsr.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

public class SidecarVectorsTest {

    @Test
    public void acceptsAndRejectsWhatPythonDoes() throws Exception {
        int ok = 0;
        int bad = 0;
        for (JSONObject c : Vectors.cases("sidecars")) {
            String name = c.optString("name");
            String text = c.optString("text");
            if (Boolean.TRUE.equals(c.opt("ok"))) {
                ok++;
                Sidecar sc = Sidecar.parse(text, name + ".json");
                checkFields(name, JsonValues.asObject(c.opt("expect"), "expect"), sc);
            } else {
                bad++;
                String want = c.optString("error");
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
        // make_test_vectors.py's field_faults: one case per check of validate_sidecar, not just the header ones
        assertTrue(ok + " accepted, " + bad + " refused", ok >= 6 && bad >= 50);
    }

    private static String before(String s, String sep) {
        int i = s.indexOf(sep);
        return i < 0 ? s : s.substring(0, i);
    }

    private static void checkFields(String name, JSONObject e, Sidecar sc) {
        assertEquals(name, e.opt("target"), sc.target);
        assertEquals(name, e.opt("file"), sc.file);
        assertEquals(name, e.opt("precision"), sc.precision);
        assertEquals(name, Vectors.i(e, "scale"), sc.scale);
        assertEquals(name, Vectors.i(e, "halo"), sc.halo);
        assertEquals(name, Vectors.i(e, "tile"), sc.tile);
        assertEquals(name, e.opt("file_sha256"), sc.fileSha256());
        assertEquals(name, JsonValues.get(e, "data_file"), sc.dataFile());
        assertEquals(name, JsonValues.get(e, "data_sha256"), sc.dataSha256());
        if (JsonValues.get(e, "input_shape") == null) {
            assertNull(name, sc.inputShape());
        } else {
            assertArrayEquals(name, JsonValues.asIntArray(e.opt("input_shape"), "input_shape"), sc.inputShape());
        }
        JSONObject layout = JsonValues.asObject(e.opt("layout"), "layout");
        assertEquals(name, layout.opt("input"), sc.layoutInput());
        assertEquals(name, layout.opt("output"), sc.layoutOutput());
        checkSpec(name + " input", JsonValues.asObject(e.opt("input"), "input"), sc.inputSpec());
        checkSpec(name + " output", JsonValues.asObject(e.opt("output"), "output"), sc.outputSpec());
        if (JsonValues.get(e, "layer_widths") == null) {
            assertNull(name, sc.layerWidths());
        } else {
            assertArrayEquals(name, JsonValues.asIntArray(e.opt("layer_widths"), "w"), sc.layerWidths());
            assertArrayEquals(name, JsonValues.asIntArray(e.opt("shuffles"), "s"), sc.shuffles());
        }
        assertEquals(name, e.opt("tail"), sc.tail());
    }

    private static void checkSpec(String name, JSONObject e, Sidecar.TensorSpec s) {
        assertEquals(name, e.opt("dtype"), s.dtype);
        JSONArray r = JsonValues.asArray(e.opt("range"), "range");
        assertEquals(name, JsonValues.asDouble(r.opt(0), "lo"), s.lo, 0.0);
        assertEquals(name, JsonValues.asDouble(r.opt(1), "hi"), s.hi, 0.0);
        Object q = JsonValues.get(e, "quant");
        assertEquals(name, q != null, s.quantized);
        if (q != null) {
            JSONObject qm = JsonValues.asObject(q, "quant");
            assertEquals(name, JsonValues.asDouble(qm.opt("scale"), "scale"), s.quantScale, 0.0);
            assertEquals(name, JsonValues.asLong(qm.opt("zero_point"), "zp"), s.zeroPoint);
        }
    }

    @Test
    public void appChecksTellWhatCannotRunOnThePhone() throws Exception {
        String good = null;
        String onnx = null;
        String int8 = null;
        for (JSONObject c : Vectors.cases("sidecars")) {
            if ("good_x2_fp32".equals(c.opt("name"))) {
                good = (String) c.opt("text");
            } else if ("good_x3_onnx".equals(c.opt("name"))) {
                onnx = (String) c.opt("text");
            } else if ("good_x4_int8_fixed".equals(c.opt("name"))) {
                int8 = (String) c.opt("text");
            }
        }
        // written by write_sidecar from an exact verification: its infinite PSNR is null, strict JSON
        assertTrue(good, good.contains("\"psnr_y_vs_torch\": null"));
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
            Sidecar.parse(unquant, "u.json");
            fail("uint8 without quant parsed");
        } catch (MemsrException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("no way to map pixels"));
        }
        assertFalse(good.equals(fp16io));
    }
}
