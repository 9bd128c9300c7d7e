package org.memsr.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.awt.image.BufferedImage;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CancellationException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import javax.imageio.ImageIO;
import org.junit.Test;

public class TiledUpscalerTest {

    private static ArgbRaster upscale(TiledUpscaler.WindowSource src, FakePlainModel m, int tile, int halo)
            throws Exception {
        ArgbRaster out = new ArgbRaster(src.width() * m.scale, src.height() * m.scale);
        TiledUpscaler.run(src, m, tile, halo, out, null, null);
        return out;
    }

    @Test
    public void tiledEqualsWholeImageWithTheExactHalo() throws Exception {
        Random rnd = new Random(1);
        int[][] shapes = {{1, 1}, {2, 9}, {17, 5}, {31, 29}, {40, 23}};
        for (int[] hw : shapes) {
            for (int layers : new int[] {1, 3}) {
                for (int scale : new int[] {2, 3, 4}) {
                    int h = hw[0];
                    int w = hw[1];
                    ArraySource src = new ArraySource(ArraySource.random(rnd, h * w), w, h, 1);
                    int[] whole = upscale(src, new FakePlainModel(layers, scale), 0, layers).pixels;
                    for (int tile : new int[] {1, 4, 7, 16}) {
                        FakePlainModel m = new FakePlainModel(layers, scale);
                        ArgbRaster tiled = upscale(src, m, tile, layers);
                        assertArrayEquals(h + "x" + w + " L" + layers + " x" + scale + " tile " + tile, whole,
                                tiled.pixels);
                        assertEquals("one prepare per run", 1, m.prepared);
                        assertEquals(TilePlan.of(h, w, tile, layers).count(), m.calls);
                    }
                }
            }
        }
    }

    @Test
    public void aHaloSmallerThanTheReceptiveFieldIsCaught() throws Exception {
        // The test above must be able to fail: with one pixel of halo missing, seams appear.
        ArraySource src = new ArraySource(ArraySource.random(new Random(2), 30 * 30), 30, 30, 1);
        int[] whole = upscale(src, new FakePlainModel(3, 2), 0, 3).pixels;
        int[] tooThin = upscale(src, new FakePlainModel(3, 2), 8, 2).pixels;
        assertFalse(Arrays.equals(whole, tooThin));
    }

    @Test
    public void rotatedPhotosAreUpscaledAsDisplayed() throws Exception {
        Random rnd = new Random(3);
        int w = 19;
        int h = 11;
        int[] raw = ArraySource.random(rnd, w * h);
        for (int o = 1; o <= 8; o++) {
            ArraySource rotated = new ArraySource(raw, w, h, o);
            int dw = rotated.width();
            int dh = rotated.height();
            int[] shown = new int[dw * dh];
            rotated.read(new Rect(0, 0, dw, dh), shown);
            int[] want = upscale(new ArraySource(shown, dw, dh, 1), new FakePlainModel(2, 2), 0, 2).pixels;
            int[] got = upscale(rotated, new FakePlainModel(2, 2), 5, 2).pixels;
            assertArrayEquals("orientation " + o, want, got);
        }
    }

    @Test
    public void streamsAPngThatDecodesToTheWholeImageResult() throws Exception {
        Random rnd = new Random(4);
        int h = 37;
        int w = 53;
        ArraySource src = new ArraySource(ArraySource.random(rnd, h * w), w, h, 1);
        int[] whole = upscale(src, new FakePlainModel(2, 3), 0, 2).pixels;
        for (int tile : new int[] {5, 16, 64}) {
            ByteArrayOutputStream bytes = new ByteArrayOutputStream();
            PngTileWriter png = new PngTileWriter(bytes, w * 3, h * 3, 6);
            TiledUpscaler.run(src, new FakePlainModel(2, 3), tile, 2, png, null, null);
            BufferedImage img = ImageIO.read(new ByteArrayInputStream(bytes.toByteArray()));
            assertEquals(w * 3, img.getWidth());
            assertEquals(h * 3, img.getHeight());
            int[] got = img.getRGB(0, 0, w * 3, h * 3, null, 0, w * 3);
            assertArrayEquals("tile " + tile, whole, got);
        }
    }

    @Test
    public void previewSamplesTheFullOutput() throws Exception {
        Random rnd = new Random(5);
        int h = 45;
        int w = 70;
        ArraySource src = new ArraySource(ArraySource.random(rnd, h * w), w, h, 1);
        ArgbRaster full = new ArgbRaster(w * 2, h * 2);
        PreviewSink preview = new PreviewSink(w * 2, h * 2, 32);
        TiledUpscaler.run(src, new FakePlainModel(1, 2), 9, 1, new TeeSink(full, preview), null, null);
        assertEquals(5, preview.factor);  // ceil(140 / 32)
        assertEquals(28, preview.width);
        assertEquals(18, preview.height);
        for (int py = 0; py < preview.height; py++) {
            for (int px = 0; px < preview.width; px++) {
                int ox = Math.min(px * 5 + 2, w * 2 - 1);
                int oy = Math.min(py * 5 + 2, h * 2 - 1);
                assertEquals(full.pixels[oy * w * 2 + ox], preview.pixels[py * preview.width + px]);
            }
        }
    }

    @Test
    public void cancellationStopsBeforeTheNextTileAndLeavesTheOutputUnfinished() throws Exception {
        ArraySource src = new ArraySource(ArraySource.random(new Random(6), 40 * 40), 40, 40, 1);
        AtomicBoolean cancel = new AtomicBoolean();
        AtomicInteger seen = new AtomicInteger();
        FakePlainModel m = new FakePlainModel(1, 2);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PngTileWriter png = new PngTileWriter(bytes, 80, 80, 1);
        try {
            TiledUpscaler.run(src, m, 8, 1, png, (done, total) -> {
                seen.set(done);
                if (done == 3) {
                    cancel.set(true);
                }
            }, cancel);
            fail("not cancelled");
        } catch (CancellationException e) {
            assertEquals("cancelled after 3 of 25 tiles", e.getMessage());
        }
        assertEquals(3, m.calls);
        assertEquals(3, seen.get());
        try {
            png.close();
            fail("an unfinished PNG closed cleanly");
        } catch (java.io.IOException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("covers only columns"));
        }
    }

    @Test
    public void placementCoversTheOutputExactlyOnceOutsideOverlaps() {
        int[][] cases = {{1, 1, 1, 0}, {100, 37, 16, 3}, {257, 509, 64, 9}, {13, 7, 4, 2}};
        for (int[] c : cases) {
            for (int scale = 2; scale <= 4; scale++) {
                TilePlan p = TilePlan.of(c[0], c[1], c[2], c[3]);
                int ow = c[1] * scale;
                int[] hits = new int[c[0] * scale * ow];
                for (int i = 0; i < p.count(); i++) {
                    TilePlan.Tile t = p.get(i);
                    Rect win = t.window();
                    Rect crop = t.crop(scale);
                    Rect dest = t.dest(scale);
                    assertTrue(new Rect(0, 0, c[1], c[0]).contains(win));
                    assertTrue(new Rect(0, 0, win.width * scale, win.height * scale).contains(crop));
                    assertEquals(crop.width, dest.width);
                    assertEquals(crop.height, dest.height);
                    // the window reaches halo pixels past the core wherever it is not at the image border
                    assertTrue(t.x.offset() >= c[3] || win.x == 0);
                    assertTrue(t.y.offset() >= c[3] || win.y == 0);
                    assertTrue(win.right() - (t.x.coreStart + t.x.core) >= c[3] || win.right() == c[1]);
                    assertTrue(win.bottom() - (t.y.coreStart + t.y.core) >= c[3] || win.bottom() == c[0]);
                    for (int y = dest.y; y < dest.bottom(); y++) {
                        for (int x = dest.x; x < dest.right(); x++) {
                            hits[y * ow + x]++;
                        }
                    }
                }
                for (int v : hits) {
                    assertTrue("every output pixel is written", v >= 1 && v <= 4);
                }
            }
        }
    }
}
