package org.memsr.core;

/** A whole output image in memory: for outputs that fit (previews, tests); large outputs use a streaming sink. */
public final class ArgbRaster implements TileSink {
    public final int width;
    public final int height;
    public final int[] pixels;

    public ArgbRaster(int width, int height) {
        long n = (long) width * height;
        if (n > Integer.MAX_VALUE - 8) {
            throw new MemsrException(width + "x" + height + " is too large for one in-memory image; stream it");
        }
        this.width = width;
        this.height = height;
        this.pixels = new int[(int) n];
    }

    @Override
    public void put(Rect dest, int[] argb, int offset, int stride) {
        if (!new Rect(0, 0, width, height).contains(dest)) {
            throw new IllegalArgumentException(dest + " lies outside the " + width + "x" + height + " output");
        }
        for (int r = 0; r < dest.height; r++) {
            System.arraycopy(argb, offset + r * stride, pixels, (dest.y + r) * width + dest.x, dest.width);
        }
    }

    @Override
    public void close() {
    }
}
