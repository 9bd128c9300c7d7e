package org.memsr.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import java.util.Random;
import org.json.JSONObject;
import org.junit.Test;

public class OrientationVectorsTest {

    /** Displayed image built pixel by pixel from toRaw. */
    private static int[] display(int[] raw, int w, int h, int o) {
        int dw = Orientation.displayWidth(w, h, o);
        int dh = Orientation.displayHeight(w, h, o);
        int[] out = new int[dw * dh];
        for (int y = 0; y < dh; y++) {
            for (int x = 0; x < dw; x++) {
                int[] p = Orientation.toRaw(x, y, w, h, o);
                out[y * dw + x] = raw[p[1] * w + p[0]];
            }
        }
        return out;
    }

    @Test
    public void matchesPillowExifTranspose() throws Exception {
        for (JSONObject c : Vectors.cases("orientations")) {
            int o = Vectors.i(c, "orientation");
            int w = Vectors.i(c, "raw_w");
            int h = Vectors.i(c, "raw_h");
            String where = "orientation " + o + " of " + w + "x" + h;
            assertEquals(where, Vectors.i(c, "display_w"), Orientation.displayWidth(w, h, o));
            assertEquals(where, Vectors.i(c, "display_h"), Orientation.displayHeight(w, h, o));
            assertArrayEquals(where, JsonValues.asIntArray(c.opt("display"), "display"),
                    display(JsonValues.asIntArray(c.opt("raw"), "raw"), w, h, o));
        }
    }

    @Test
    public void windowReadsEqualCropsOfTheDisplayedImage() {
        Random rnd = new Random(7);
        for (int trial = 0; trial < 200; trial++) {
            int w = 1 + rnd.nextInt(9);
            int h = 1 + rnd.nextInt(9);
            int o = 1 + rnd.nextInt(8);
            int[] raw = new int[w * h];
            for (int i = 0; i < raw.length; i++) {
                raw[i] = rnd.nextInt();
            }
            int dw = Orientation.displayWidth(w, h, o);
            int dh = Orientation.displayHeight(w, h, o);
            int[] shown = display(raw, w, h, o);
            int x0 = rnd.nextInt(dw);
            int y0 = rnd.nextInt(dh);
            Rect d = new Rect(x0, y0, 1 + rnd.nextInt(dw - x0), 1 + rnd.nextInt(dh - y0));
            Rect r = Orientation.rawRect(d, w, h, o);
            int[] region = new int[r.width * r.height];  // what BitmapRegionDecoder would return
            for (int y = 0; y < r.height; y++) {
                System.arraycopy(raw, (r.y + y) * w + r.x, region, y * r.width, r.width);
            }
            int[] got = new int[d.width * d.height];
            Orientation.toDisplay(region, d, w, h, o, got);
            int[] want = new int[d.width * d.height];
            for (int y = 0; y < d.height; y++) {
                System.arraycopy(shown, (d.y + y) * dw + d.x, want, y * d.width, d.width);
            }
            assertArrayEquals("orientation " + o + " " + d, want, got);
            assertEquals((long) d.width * d.height, (long) r.width * r.height);
        }
    }
}
