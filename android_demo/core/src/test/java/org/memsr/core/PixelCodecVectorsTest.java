package org.memsr.core;

import static org.junit.Assert.assertEquals;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

public class PixelCodecVectorsTest {

    private static Sidecar.TensorSpec spec(JSONObject s) {
        // Go through the sidecar parser, as the app does; the spec stands for both sides of a valid sidecar.
        String text = "{\"format\":\"memsr-artefact\",\"version\":1,\"target\":\"tflite\",\"file\":\"m.tflite\","
                + "\"precision\":\"fp32\",\"scale\":2,\"halo\":1,\"tile\":8,"
                + "\"layout\":{\"input\":\"NHWC\",\"output\":\"NHWC\"},\"source_model\":{},"
                + "\"file_sha256\":\"" + "ab".repeat(32) + "\",\"input\":" + s + ",\"output\":" + s + "}";
        return Sidecar.parse(text, "spec").inputSpec();
    }

    @Test
    public void encodeAndDecodeMatchThePythonRuntimeBitForBit() throws Exception {
        for (JSONObject c : Vectors.cases("codecs")) {
            JSONObject s = JsonValues.asObject(c.opt("spec"), "spec");
            PixelCodec codec = new PixelCodec(spec(s));
            boolean isFloat = "float32".equals(s.opt("dtype"));
            boolean unsigned = "uint8".equals(s.opt("dtype"));
            String where = s.toString();

            int[] samples = JsonValues.asIntArray(c.opt("samples"), "samples");
            int[] argb = new int[samples.length];
            for (int i = 0; i < samples.length; i++) {
                argb[i] = 0xff000000 | (samples[i] << 16) | (samples[i] << 8) | samples[i];
            }
            ByteBuffer enc = ByteBuffer.allocate(samples.length * 3 * codec.elementBytes())
                    .order(ByteOrder.nativeOrder());
            codec.encode(argb, 0, samples.length, enc);
            enc.flip();
            JSONArray want = JsonValues.asArray(c.opt("encoded"), "encoded");
            for (int i = 0; i < samples.length; i++) {
                for (int ch = 0; ch < 3; ch++) {
                    if (isFloat) {
                        float got = enc.getFloat();
                        assertEquals(where + " sample " + i, (float) JsonValues.asDouble(want.opt(i), "e"), got, 0f);
                    } else {
                        int got = unsigned ? enc.get() & 0xff : enc.get();
                        assertEquals(where + " sample " + i, JsonValues.asInt(want.opt(i), "e"), got);
                    }
                }
            }

            JSONArray raw = JsonValues.asArray(c.opt("raw"), "raw");
            ByteBuffer in = ByteBuffer.allocate(raw.length() * codec.elementBytes()).order(ByteOrder.nativeOrder());
            for (int i = 0; i < raw.length(); i++) {
                Object v = raw.opt(i);
                if (isFloat) {
                    in.putFloat((float) JsonValues.asDouble(v, "raw"));
                } else {
                    in.put((byte) JsonValues.asInt(v, "raw"));
                }
            }
            in.flip();
            int n = raw.length() / 3;
            int[] out = new int[n];
            codec.decode(in, n, out, 0);
            int[] dec = JsonValues.asIntArray(c.opt("decoded"), "decoded");
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
