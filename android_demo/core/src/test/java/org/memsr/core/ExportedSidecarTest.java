package org.memsr.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.FileInputStream;
import java.io.InputStream;
import java.util.Map;
import org.junit.Assume;
import org.junit.Test;

/** Sidecars written by the real exporter (memsr-export) must be accepted and runnable by the app's checks. */
public class ExportedSidecarTest {
    @Test
    public void exporterOutputIsRunnableOnThePhone() throws Exception {
        Object list = Vectors.all().get("exported");
        Assume.assumeTrue("vectors made without --export-dir", list != null && !Json.asList(list, "e").isEmpty());
        for (Map<String, Object> c : Vectors.cases("exported")) {
            String name = (String) c.get("name");
            Sidecar sc = Sidecar.parse((String) c.get("text"), name);
            sc.requireRunnableTflite();
            assertEquals(name, Vectors.i(c, "scale"), sc.scale);
            assertEquals(name, Vectors.i(c, "halo"), sc.halo);
            assertEquals(name, Vectors.i(c, "tile"), sc.tile);
            assertArrayEquals(name, Json.asIntArray(c.get("layer_widths"), "w"), sc.layerWidths());
            try (InputStream in = new FileInputStream((String) c.get("artefact"))) {
                assertEquals(name, c.get("file_sha256"), Checksums.sha256Hex(in));
            }
            assertEquals(sc.fileSha256(), c.get("file_sha256"));
            // the codecs the app builds from it, and the tile the budget rule gives
            assertTrue(new PixelCodec(sc.inputSpec()).elementBytes() >= 1);
            assertTrue(new PixelCodec(sc.outputSpec()).elementBytes() >= 1);
            assertTrue(MemoryBudget.tileForBudget(sc.layerWidths(), sc.halo, 16L << 20, 4, 1) >= 1);
        }
    }
}
