package org.memsr.core;

import static org.junit.Assert.assertEquals;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.junit.Test;

public class PixelCodecVectorsTest {

    private static Sidecar.TensorSpec spec(Map<String, Object> s) {
        // Go through the sidecar parser, as the app does.
        String text = "{\"format\":\"memsr-artefact\",\"version\":1,\"target\":\"tflite\",\"file\":\"m.tflite\","
                + "\"precision\":\"fp32\",\"scale\":2,\"halo\":1,\"tile\":8,\"layout\":{},\"output\":{},"
                + "\"source_model\":{},\"input\":" + toJson(s) + "}";
        return Sidecar.parse(text, "spec").inputSpec();
    }

    private static String toJson(Object o) {
        if (o == null) {
            return "null";
        }
        if (o instanceof String) {
            return "\"" + o + "\"";
        }
        if (o instanceof Map) {
            StringBuilder b = new StringBuilder("{");
            for (Map.Entry<?, ?> e : ((Map<?, ?>) o).entrySet()) {
                b.append(b.length() > 1 ? "," : "").append('"').append(e.getKey()).append("\":")
                        .append(toJson(e.getValue()));
            }
            return b.append('}').toString();
        }
        if (o instanceof List) {
            StringBuilder b = new StringBuilder("[");
            for (Object x : (List<?>) o) {
                b.append(b.length() > 1 ? "," : "").append(toJson(x));
            }
            return b.append(']').toString();
        }
        if (o instanceof Double) {
            return Double.toString((Double) o);  // round-trips the exact double
        }
        return String.valueOf(o);
    }

    @Test
    public void encodeAndDecodeMatchThePythonRuntimeBitForBit() throws Exception {
        for (Map<String, Object> c : Vectors.cases("codecs")) {
            Map<String, Object> s = Json.asObject(c.get("spec"), "spec");
            PixelCodec codec = new PixelCodec(spec(s));
            boolean isFloat = "float32".equals(s.get("dtype"));
            boolean unsigned = "uint8".equals(s.get("dtype"));
            String where = s.toString();

            int[] samples = Json.asIntArray(c.get("samples"), "samples");
            int[] argb = new int[samples.length];
            for (int i = 0; i < samples.length; i++) {
                argb[i] = 0xff000000 | (samples[i] << 16) | (samples[i] << 8) | samples[i];
            }
            ByteBuffer enc = ByteBuffer.allocate(samples.length * 3 * codec.elementBytes())
                    .order(ByteOrder.nativeOrder());
            codec.encode(argb, 0, samples.length, enc);
            enc.flip();
            List<Object> want = Json.asList(c.get("encoded"), "encoded");
            for (int i = 0; i < samples.length; i++) {
                for (int ch = 0; ch < 3; ch++) {
                    if (isFloat) {
                        float got = enc.getFloat();
                        assertEquals(where + " sample " + i, (float) Json.asDouble(want.get(i), "e"), got, 0f);
                    } else {
                        int got = unsigned ? enc.get() & 0xff : enc.get();
                        assertEquals(where + " sample " + i, Json.asInt(want.get(i), "e"), got);
                    }
                }
            }

            List<Object> raw = Json.asList(c.get("raw"), "raw");
            ByteBuffer in = ByteBuffer.allocate(raw.size() * codec.elementBytes()).order(ByteOrder.nativeOrder());
            for (Object v : raw) {
                if (isFloat) {
                    in.putFloat((float) Json.asDouble(v, "raw"));
                } else {
                    in.put((byte) Json.asInt(v, "raw"));
                }
            }
            in.flip();
            int n = raw.size() / 3;
            int[] out = new int[n];
            codec.decode(in, n, out, 0);
            int[] dec = Json.asIntArray(c.get("decoded"), "decoded");
            for (int i = 0; i < n; i++) {
                int p = out[i];
                assertEquals(where + " pixel " + i + " alpha", 0xff, p >>> 24);
                assertEquals(where + " pixel " + i + " R", dec[3 * i], (p >> 16) & 0xff);
                assertEquals(where + " pixel " + i + " G", dec[3 * i + 1], (p >> 8) & 0xff);
                assertEquals(where + " pixel " + i + " B", dec[3 * i + 2], p & 0xff);
            }
        }
    }
}
