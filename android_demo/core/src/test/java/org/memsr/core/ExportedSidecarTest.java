package org.memsr.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.FileInputStream;
import java.io.InputStream;
import org.json.JSONObject;
import org.junit.Assume;
import org.junit.Test;

/** Sidecars written by the real exporter (memsr-export) must be accepted and runnable by the app's checks. */
public class ExportedSidecarTest {
    @Test
    public void exporterOutputIsRunnableOnThePhone() throws Exception {
        Object list = Vectors.all().opt("exported");
        Assume.assumeTrue("vectors made without --export-dir", list != null && JsonValues.asArray(list, "e").length() > 0);
        for (JSONObject c : Vectors.cases("exported")) {
            String name = c.optString("name");
            Sidecar sc = Sidecar.parse(c.optString("text"), name);
            sc.requireRunnableTflite();
            assertEquals(name, Vectors.i(c, "scale"), sc.scale);
            assertEquals(name, Vectors.i(c, "halo"), sc.halo);
            assertEquals(name, Vectors.i(c, "tile"), sc.tile);
            assertArrayEquals(name, JsonValues.asIntArray(c.opt("layer_widths"), "w"), sc.layerWidths());
            assertArrayEquals(name, JsonValues.asIntArray(c.opt("shuffles"), "s"), sc.shuffles());
            try (InputStream in = new FileInputStream(c.optString("artefact"))) {
                assertEquals(name, c.opt("file_sha256"), Checksums.sha256Hex(in));
            }
            assertEquals(sc.fileSha256(), c.opt("file_sha256"));
            // the codecs the app builds from it, and the tile the budget rule gives
            assertTrue(new PixelCodec(sc.inputSpec()).elementBytes() >= 1);
            assertTrue(new PixelCodec(sc.outputSpec()).elementBytes() >= 1);
            assertTrue(MemoryBudget.tileForBudget(sc.layerWidths(), sc.shuffles(), sc.halo, 16L << 20, 4, 1) >= 1);
        }
    }
}
