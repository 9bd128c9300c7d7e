package org.memsr.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.Random;
import javax.imageio.ImageIO;
import org.junit.Test;

public class PngTileWriterTest {

    private static int[] decode(byte[] png, int w, int h) throws IOException {
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(png));
        assertEquals(w, img.getWidth());
        assertEquals(h, img.getHeight());
        return img.getRGB(0, 0, w, h, null, 0, w);
    }

    @Test
    public void overlappingLastBandAndColumnAreWrittenOnce() throws Exception {
        // 10 x 7 output in 4 x 4 tiles: bands at rows 0 and 3 (the last moved back), columns at 0, 4, 6.
        int w = 10;
        int h = 7;
        int[] img = ArraySource.random(new Random(1), w * h);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PngTileWriter png = new PngTileWriter(out, w, h, 9);
        int[] ys = {0, 3};
        int[] xs = {0, 4, 6};
        for (int y : ys) {
            for (int x : xs) {
                png.put(new Rect(x, y, 4, 4), img, y * w + x, w);
            }
        }
        png.close();
        assertEquals(h, png.rowsEmitted());
        assertArrayEquals(img, decode(out.toByteArray(), w, h));
    }

    @Test
    public void largeImagesSpanManyIdatChunks() throws Exception {
        int w = 700;
        int h = 300;
        int[] img = ArraySource.random(new Random(2), w * h);  // noise: incompressible, > 64 KB of IDAT
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PngTileWriter png = new PngTileWriter(out, w, h, 1);
        for (int y = 0; y < h; y += 100) {
            for (int x = 0; x < w; x += 350) {
                png.put(new Rect(x, y, 350, 100), img, y * w + x, w);
            }
        }
        png.close();
        assertTrue(out.size() > 3 * (1 << 16));
        assertArrayEquals(img, decode(out.toByteArray(), w, h));
    }

    @Test
    public void paethPredictorFollowsThePngSpec() {
        assertEquals(20, PngTileWriter.paeth(10, 20, 10));  // p = 20 = b
        assertEquals(15, PngTileWriter.paeth(10, 20, 15));  // p = 15 = c
        assertEquals(20, PngTileWriter.paeth(10, 20, 5));
        assertEquals(7, PngTileWriter.paeth(7, 7, 7));
        assertEquals(0, PngTileWriter.paeth(0, 255, 255));
    }

    @Test
    public void missingOrMisorderedTilesFailLoudly() throws Exception {
        int[] img = new int[16 * 16];
        expectFailure("a gap in the band", () -> {
            PngTileWriter p = new PngTileWriter(new ByteArrayOutputStream(), 16, 16, 1);
            p.put(new Rect(0, 0, 8, 8), img, 0, 16);
            p.put(new Rect(9, 0, 7, 8), img, 0, 16);
        }, "unwritten");
        expectFailure("skipped rows", () -> {
            PngTileWriter p = new PngTileWriter(new ByteArrayOutputStream(), 16, 16, 1);
            p.put(new Rect(0, 0, 16, 4), img, 0, 16);
            p.put(new Rect(0, 8, 16, 8), img, 0, 16);
        }, "skipped");
        expectFailure("a band going back up", () -> {
            PngTileWriter p = new PngTileWriter(new ByteArrayOutputStream(), 16, 16, 1);
            p.put(new Rect(0, 8, 16, 8), img, 0, 16);
        }, "must start at row 0");
        expectFailure("rows never written", () -> {
            PngTileWriter p = new PngTileWriter(new ByteArrayOutputStream(), 16, 16, 1);
            p.put(new Rect(0, 0, 16, 8), img, 0, 16);
            p.close();
        }, "never arrived");
        expectFailure("outside the image", () -> {
            PngTileWriter p = new PngTileWriter(new ByteArrayOutputStream(), 16, 16, 1);
            p.put(new Rect(10, 0, 8, 8), img, 0, 16);
        }, "outside");
    }

    interface Body {
        void run() throws Exception;
    }

    private static void expectFailure(String what, Body body, String text) throws Exception {
        try {
            body.run();
            fail(what + " was accepted");
        } catch (IllegalArgumentException | IOException e) {
            assertTrue(what + ": " + e.getMessage(), e.getMessage().contains(text));
        }
    }
}
