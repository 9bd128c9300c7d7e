package org.memsr.demo;

import android.app.ActivityManager;
import android.content.Context;
import android.graphics.Bitmap;
import android.net.Uri;
import android.os.Handler;
import android.os.Looper;
import java.io.BufferedOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.concurrent.CancellationException;
import java.util.concurrent.atomic.AtomicBoolean;
import org.memsr.core.MemoryBudget;
import org.memsr.core.MemsrException;
import org.memsr.core.PngTileWriter;
import org.memsr.core.PreviewSink;
import org.memsr.core.Sidecar;
import org.memsr.core.TeeSink;
import org.memsr.core.TilePlan;
import org.memsr.core.TiledUpscaler;

/**
 * One upscale, run on a worker thread: choose the tile from the sidecar and the memory budget, run the model tile
 * by tile, stream the output PNG to a cache file (one row band in memory) and keep a small preview to show.
 * Listener calls arrive on the main thread.
 */
final class UpscaleJob implements Runnable {
    /** Longest side of the on-screen preview of the output; the full output stays in the PNG. */
    static final int PREVIEW_MAX = 2048;
    /** zlib level: 1-3 compress photos nearly as well as 6-9 at a fraction of the time (PNG is lossless anyway). */
    static final int PNG_LEVEL = 3;
    /** Activation budget bounds, bytes: the rest of the memory goes to windows, the PNG band, driver copies. */
    static final long MIN_BUDGET = 16L << 20;
    static final long MAX_BUDGET = 512L << 20;

    interface Listener {
        void onProgress(int done, int total);

        void onFinished(Result r);

        void onFailed(String message);

        void onCancelled(String message);
    }

    static final class Result {
        File png;
        int scale;
        int inWidth;
        int inHeight;
        int outWidth;
        int outHeight;
        TilePlan plan;
        String model;
        String accelerator;
        long runNanos;
        long loadNanos;
        long budgetBytes;
        long activationBytes;
        long bandBytes;
        String memory;
        Bitmap preview;
        int previewFactor;
    }

    private final Context context;
    private final Uri input;
    private final Sidecar sidecar;
    private final boolean preferGpu;
    private final File output;
    private final Listener listener;
    private final Handler main = new Handler(Looper.getMainLooper());
    private final AtomicBoolean cancel = new AtomicBoolean();
    private volatile TfliteModel model;

    UpscaleJob(Context context, Uri input, Sidecar sidecar, boolean preferGpu, File output, Listener listener) {
        this.context = context.getApplicationContext();
        this.input = input;
        this.sidecar = sidecar;
        this.preferGpu = preferGpu;
        this.output = output;
        this.listener = listener;
    }

    void cancel() {
        cancel.set(true);
        TfliteModel m = model;
        if (m != null) {
            m.cancel();
        }
    }

    @Override
    public void run() {
        MemoryMonitor mon = new MemoryMonitor();
        mon.start();
        File partial = new File(output.getPath() + ".part");
        Result r = new Result();
        try (RegionSource src = RegionSource.open(context.getContentResolver(), input)) {
            sidecar.requireRunnableTflite();
            ModelAssets.verify(context.getAssets(), sidecar);
            r.scale = sidecar.scale;
            r.model = sidecar.file;
            r.inWidth = src.width();
            r.inHeight = src.height();
            long ow = (long) r.inWidth * r.scale;
            long oh = (long) r.inHeight * r.scale;
            if (ow > Integer.MAX_VALUE || oh > Integer.MAX_VALUE) {
                throw new MemsrException("output " + ow + "x" + oh + " is larger than a PNG can be");
            }
            r.outWidth = (int) ow;
            r.outHeight = (int) oh;
            int tile = chooseTile(r);

            long t0 = System.nanoTime();
            TfliteModel m = new TfliteModel(ModelAssets.map(context.getAssets(), sidecar), sidecar, preferGpu,
                    Math.min(4, Runtime.getRuntime().availableProcessors()));
            model = m;
            r.loadNanos = System.nanoTime() - t0;
            try {
                PreviewSink preview = new PreviewSink(r.outWidth, r.outHeight, PREVIEW_MAX);
                long t1 = System.nanoTime();
                try (OutputStream os = new BufferedOutputStream(new FileOutputStream(partial), 1 << 20)) {
                    PngTileWriter png = new PngTileWriter(os, r.outWidth, r.outHeight, PNG_LEVEL);
                    r.plan = TiledUpscaler.run(src, m, tile, sidecar.halo, new TeeSink(png, preview),
                            (done, total) -> main.post(() -> listener.onProgress(done, total)), cancel);
                }
                r.runNanos = System.nanoTime() - t1;
                r.accelerator = m.accelerator();
                r.preview = Bitmap.createBitmap(preview.pixels, preview.width, preview.height,
                        Bitmap.Config.ARGB_8888);
                r.previewFactor = preview.factor;
            } finally {
                model = null;
                m.close();
            }
            if (!partial.renameTo(output)) {
                throw new IOException("cannot move the finished PNG to " + output);
            }
            r.png = output;
            mon.stop();
            r.memory = mon.report();
            main.post(() -> listener.onFinished(r));
        } catch (CancellationException e) {
            main.post(() -> listener.onCancelled(e.getMessage()));
        } catch (MemsrException e) {
            main.post(() -> listener.onFailed(e.getMessage()));
        } catch (IOException e) {
            main.post(() -> listener.onFailed("I/O error: " + e.getMessage()));
        } catch (OutOfMemoryError e) {
            main.post(() -> listener.onFailed("out of memory (" + e.getMessage() + "): close other apps or export "
                    + "with a smaller default tile"));
        } catch (RuntimeException e) {
            main.post(() -> listener.onFailed(e.toString()));
        } finally {
            mon.stop();
            if (partial.exists() && !partial.delete()) {
                partial.deleteOnExit();
            }
        }
    }

    /**
     * The sidecar's tile, shrunk to what the activation budget allows (the shared budget rule, from the source
     * model's layer widths) and to what the Java heap allows for one PNG row band (width * core * s * 3 bytes).
     */
    private int chooseTile(Result r) {
        ActivityManager am = (ActivityManager) context.getSystemService(Context.ACTIVITY_SERVICE);
        ActivityManager.MemoryInfo mi = new ActivityManager.MemoryInfo();
        am.getMemoryInfo(mi);
        long free = Math.max(0, mi.availMem - mi.threshold);
        r.budgetBytes = Math.max(MIN_BUDGET, Math.min(MAX_BUDGET, free / 4));
        int tile = sidecar.tile;
        int[] widths = sidecar.layerWidths();
        int dtypeBytes = 4;  // fp32 activations; a GPU running fp16 needs half, so this is the safe side
        if (widths != null) {
            tile = Math.min(tile, MemoryBudget.tileForBudget(widths, sidecar.shuffles(), sidecar.halo, r.budgetBytes,
                    dtypeBytes, 1));
        }
        long bandBudget = Runtime.getRuntime().maxMemory() / 4;
        long bytesPerCoreRow = (long) r.outWidth * r.scale * 3;
        tile = (int) Math.max(1, Math.min(tile, bandBudget / bytesPerCoreRow));
        TilePlan plan = TilePlan.of(r.inHeight, r.inWidth, tile, sidecar.halo);
        r.activationBytes = widths == null ? -1 : (long) plan.windowHeight() * plan.windowWidth()
                * MemoryBudget.perPixelChannels(widths, sidecar.shuffles()) * dtypeBytes;
        r.bandBytes = (long) r.outWidth * plan.rows.get(0).core * r.scale * 3;
        return tile;
    }
}
