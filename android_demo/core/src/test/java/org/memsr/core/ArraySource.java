package org.memsr.core;

/** An in-memory image as a window source, optionally stored rotated/flipped with an EXIF orientation. */
final class ArraySource implements TiledUpscaler.WindowSource {
    final int[] raw;
    final int rawW;
    final int rawH;
    final int orientation;
    int reads = 0;

    ArraySource(int[] raw, int rawW, int rawH, int orientation) {
        this.raw = raw;
        this.rawW = rawW;
        this.rawH = rawH;
        this.orientation = orientation;
    }

    @Override
    public int width() {
        return Orientation.displayWidth(rawW, rawH, orientation);
    }

    @Override
    public int height() {
        return Orientation.displayHeight(rawW, rawH, orientation);
    }

    @Override
    public void read(Rect window, int[] argb) {
        reads++;
        Rect r = Orientation.rawRect(window, rawW, rawH, orientation);
        int[] region = new int[r.width * r.height];
        for (int y = 0; y < r.height; y++) {
            System.arraycopy(raw, (r.y + y) * rawW + r.x, region, y * r.width, r.width);
        }
        Orientation.toDisplay(region, window, rawW, rawH, orientation, argb);
    }

    static int[] random(java.util.Random rnd, int n) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) {
            a[i] = 0xff000000 | rnd.nextInt(1 << 24);
        }
        return a;
    }
}
