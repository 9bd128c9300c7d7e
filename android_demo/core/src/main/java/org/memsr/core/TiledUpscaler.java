package org.memsr.core;

import java.io.IOException;
import java.util.concurrent.CancellationException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Runs a model over an image tile by tile with the exact plan: read each window, upscale it, and hand the core of
 * its output to a sink. Memory: one input window and one output window of ARGB ints, whatever the image size.
 */
public final class TiledUpscaler {
    private TiledUpscaler() {
    }

    /** The LR image, read a window at a time (BitmapRegionDecoder on Android, an array in tests). */
    public interface WindowSource {
        int width();

        int height();

        /** Fill {@code argb} (row-major, stride = window.width) with the window's pixels. */
        void read(Rect window, int[] argb) throws IOException;
    }

    /** The super-resolution model: one window in, that window upscaled by {@link #scale()} out. */
    public interface SrModel {
        int scale();

        /** Called once per run with the plan's window size (all windows share it). */
        void prepare(int winHeight, int winWidth) throws IOException;

        /** {@code out} is (winHeight*scale) x (winWidth*scale), row-major. */
        void upscale(int[] argbIn, int winHeight, int winWidth, int[] argbOut) throws IOException;
    }

    public interface Progress {
        void onTile(int done, int total);
    }

    /**
     * Upscale {@code src} into {@code sink} and close the sink when every tile is written. On cancellation or an
     * error the sink is left open and unfinished: the caller discards its output.
     *
     * @throws CancellationException when {@code cancel} is set (checked before every tile)
     */
    public static TilePlan run(WindowSource src, SrModel model, int tile, int halo, TileSink sink,
                               Progress progress, AtomicBoolean cancel) throws IOException {
        TilePlan plan = TilePlan.of(src.height(), src.width(), tile, halo);
        int s = model.scale();
        int wh = plan.windowHeight();
        int ww = plan.windowWidth();
        long outPixels = (long) wh * s * ww * s;
        if (outPixels > Integer.MAX_VALUE - 8) {
            throw new MemsrException("a " + wh + "x" + ww + " window upscaled x" + s
                    + " does not fit one buffer; use a smaller tile");
        }
        int[] in = new int[wh * ww];
        int[] out = new int[(int) outPixels];
        model.prepare(wh, ww);
        int outStride = ww * s;
        for (int i = 0; i < plan.count(); i++) {
            if (cancel != null && cancel.get()) {
                throw new CancellationException("cancelled after " + i + " of " + plan.count() + " tiles");
            }
            TilePlan.Tile t = plan.get(i);
            src.read(t.window(), in);
            model.upscale(in, wh, ww, out);
            Rect crop = t.crop(s);
            sink.put(t.dest(s), out, crop.y * outStride + crop.x, outStride);
            if (progress != null) {
                progress.onTile(i + 1, plan.count());
            }
        }
        sink.close();
        return plan;
    }
}
