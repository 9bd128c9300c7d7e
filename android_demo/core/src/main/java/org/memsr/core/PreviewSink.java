package org.memsr.core;

/**
 * A point-sampled preview of an output too big to show whole: preview pixel (px, py) is output pixel
 * (min(px*k + k/2, W-1), min(py*k + k/2, H-1)) for an integer factor k. Sampling (not averaging) keeps it exact
 * under the plan's overlapping tiles, which rewrite the same values.
 */
public final class PreviewSink implements TileSink {
    public final int factor;
    public final int width;
    public final int height;
    public final int[] pixels;
    private final int outWidth;
    private final int outHeight;

    /** Smallest factor that brings the longer side of a W x H output down to maxSide pixels or fewer. */
    public static int factorFor(long outWidth, long outHeight, int maxSide) {
        long side = Math.max(outWidth, outHeight);
        return (int) Math.max(1, (side + maxSide - 1) / maxSide);
    }

    public PreviewSink(int outWidth, int outHeight, int maxSide) {
        this.outWidth = outWidth;
        this.outHeight = outHeight;
        this.factor = factorFor(outWidth, outHeight, maxSide);
        this.width = TilePlan.ceilDiv(outWidth, factor);
        this.height = TilePlan.ceilDiv(outHeight, factor);
        this.pixels = new int[width * height];
    }

    private int sample(int p, int limit) {
        return Math.min(p * factor + factor / 2, limit - 1);
    }

    @Override
    public void put(Rect dest, int[] argb, int offset, int stride) {
        // Preview indices whose sample may fall in the tile; the check inside is exact.
        int py0 = Math.max(0, dest.y / factor - 1);
        int py1 = Math.min(height, dest.bottom() / factor + 1);
        int px0 = Math.max(0, dest.x / factor - 1);
        int px1 = Math.min(width, dest.right() / factor + 1);
        for (int py = py0; py < py1; py++) {
            int oy = sample(py, outHeight);
            if (oy < dest.y || oy >= dest.bottom()) {
                continue;
            }
            for (int px = px0; px < px1; px++) {
                int ox = sample(px, outWidth);
                if (ox >= dest.x && ox < dest.right()) {
                    pixels[py * width + px] = argb[offset + (oy - dest.y) * stride + (ox - dest.x)];
                }
            }
        }
    }

    @Override
    public void close() {
    }
}
