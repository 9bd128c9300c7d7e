package org.memsr.core;

/**
 * EXIF orientation (1..8) for region reads: camera JPEGs store pixels as the sensor saw them and a tag saying how
 * to show them. The tile plan works on the image as displayed; this maps a displayed window to the stored region
 * to decode and turns the decoded pixels upright, so the app upscales what the user sees without decoding the
 * whole photo. Tag meanings follow the EXIF 2.3 table (6 = rotate 90 degrees clockwise to display).
 */
public final class Orientation {
    private Orientation() {
    }

    static void check(int o) {
        if (o < 1 || o > 8) {
            throw new IllegalArgumentException("EXIF orientation must be 1..8, got " + o);
        }
    }

    /** Orientations 5..8 swap width and height. */
    public static boolean swapsAxes(int o) {
        check(o);
        return o >= 5;
    }

    public static int displayWidth(int rawW, int rawH, int o) {
        return swapsAxes(o) ? rawH : rawW;
    }

    public static int displayHeight(int rawW, int rawH, int o) {
        return swapsAxes(o) ? rawW : rawH;
    }

    /** Stored pixel {x, y} shown at displayed pixel (dx, dy). */
    public static int[] toRaw(int dx, int dy, int rawW, int rawH, int o) {
        switch (o) {
            case 1: return new int[] {dx, dy};
            case 2: return new int[] {rawW - 1 - dx, dy};
            case 3: return new int[] {rawW - 1 - dx, rawH - 1 - dy};
            case 4: return new int[] {dx, rawH - 1 - dy};
            case 5: return new int[] {dy, dx};
            case 6: return new int[] {dy, rawH - 1 - dx};
            case 7: return new int[] {rawW - 1 - dy, rawH - 1 - dx};
            case 8: return new int[] {rawW - 1 - dy, dx};
            default:
                check(o);
                throw new AssertionError();
        }
    }

    /** The stored region holding displayed window {@code d}. */
    public static Rect rawRect(Rect d, int rawW, int rawH, int o) {
        int[] a = toRaw(d.x, d.y, rawW, rawH, o);
        int[] b = toRaw(d.right() - 1, d.bottom() - 1, rawW, rawH, o);
        int x0 = Math.min(a[0], b[0]);
        int y0 = Math.min(a[1], b[1]);
        return new Rect(x0, y0, Math.abs(a[0] - b[0]) + 1, Math.abs(a[1] - b[1]) + 1);
    }

    /**
     * Turn the decoded stored region {@code raw} (of rawRect(d), row-major) into displayed window {@code d}'s
     * pixels in {@code out} (stride d.width).
     */
    public static void toDisplay(int[] raw, Rect d, int rawW, int rawH, int o, int[] out) {
        Rect r = rawRect(d, rawW, rawH, o);
        // The map is affine, so index steps per displayed x and y are constant: no per-pixel allocation.
        int[] p00 = toRaw(d.x, d.y, rawW, rawH, o);
        int[] p10 = toRaw(d.x + 1, d.y, rawW, rawH, o);
        int[] p01 = toRaw(d.x, d.y + 1, rawW, rawH, o);
        int base = (p00[1] - r.y) * r.width + (p00[0] - r.x);
        int stepX = (p10[1] - p00[1]) * r.width + (p10[0] - p00[0]);
        int stepY = (p01[1] - p00[1]) * r.width + (p01[0] - p00[0]);
        for (int y = 0; y < d.height; y++) {
            int src = base + y * stepY;
            int dst = y * d.width;
            for (int x = 0; x < d.width; x++) {
                out[dst + x] = raw[src];
                src += stepX;
            }
        }
    }
}
