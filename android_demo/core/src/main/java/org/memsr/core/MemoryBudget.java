package org.memsr.core;

/**
 * The memory-budget rule for plain models, ported exactly from {@code memsr_deploy/formats/memory_budget.py} (the spec).
 *
 * <p>C = [3, *layerWidths] (the tail's convs last); f[i] = the pixel-shuffle factor after conv i ({@code shuffles},
 * {@link #shuffleAfter}: 3*s*s then a shuffle by s for the one-conv tail; for EDSR's upsampler a shuffle after
 * each LR-side tail conv, then a conv at the output resolution); r[i] = the resolution conv i runs at
 * (r[0] = 1, r[i+1] = r[i] * f[i]); E[0] = 3, E[i+1] = C[i+1] * r[i]^2 the elements per LR pixel of every map.
 * Per-pixel live elements P = max(max_i (E[i] + E[i+1]), max_{f[i] > 1} 2 * E[i+1]): two maps alive per conv,
 * and the pixel-shuffle copy of every shuffled map. A window of side tile + 2*halo needs
 * batch * side^2 * P * dtypeBytes activation bytes. Integer arithmetic throughout so both languages agree to
 * the byte.
 */
public final class MemoryBudget {
    public static final String[] TAILS = {"shuffle", "upsampler"};

    private MemoryBudget() {
    }

    /**
     * Port of {@code plain_layout.shuffle_after}: the pixel-shuffle factor after each of {@code convs} convs
     * (1 = none), the tail's last.
     */
    public static int[] shuffleAfter(int convs, int scale, String tail) {
        int[] tailPart;
        if ("shuffle".equals(tail)) {
            tailPart = new int[] {scale};
        } else if ("upsampler".equals(tail)) {
            tailPart = scale == 4 ? new int[] {2, 2, 1} : new int[] {scale, 1};
        } else {
            throw new MemsrException("unknown tail " + Sidecar.pyRepr(tail) + "; expected one of shuffle, upsampler");
        }
        if (convs < tailPart.length) {
            throw new MemsrException(convs + " convs cannot hold a " + tail + " tail of " + tailPart.length);
        }
        int[] out = new int[convs];
        java.util.Arrays.fill(out, 1);
        System.arraycopy(tailPart, 0, out, convs - tailPart.length, tailPart.length);
        return out;
    }

    /** P for a model with the one-conv tail (a shuffle after the last conv only). */
    public static int perPixelChannels(int[] layerWidths) {
        return perPixelChannels(layerWidths, null);
    }

    /** P (see the class comment); {@code shuffles} null: the one-conv tail. */
    public static int perPixelChannels(int[] layerWidths, int[] shuffles) {
        if (layerWidths == null || layerWidths.length == 0) {
            throw new MemsrException("layer_widths is empty: the model description is needed for the budget rule");
        }
        if (shuffles != null && shuffles.length != layerWidths.length) {
            throw new MemsrException(shuffles.length + " shuffle factors for " + layerWidths.length + " convs");
        }
        long prev = 3;
        long r = 1;
        long p = 0;
        for (int i = 0; i < layerWidths.length; i++) {
            int w = layerWidths[i];
            if (w < 1) {
                throw new MemsrException("layer width must be positive, got " + w);
            }
            int f = shuffles == null ? (i == layerWidths.length - 1 ? 2 : 1) : shuffles[i];
            long e = Math.multiplyExact((long) w, r * r);
            p = Math.max(p, prev + e);
            if (f > 1) {
                p = Math.max(p, 2 * e);
            }
            prev = e;
            r *= f;
        }
        return Math.toIntExact(p);
    }

    public static long peakBytesTiled(int[] layerWidths, int halo, int tile, int dtypeBytes, int batch) {
        return peakBytesTiled(layerWidths, null, halo, tile, dtypeBytes, batch);
    }

    public static long peakBytesTiled(int[] layerWidths, int[] shuffles, int halo, int tile, int dtypeBytes,
            int batch) {
        long win = tile + 2L * halo;
        return Math.multiplyExact(Math.multiplyExact((long) batch * win, win),
                (long) perPixelChannels(layerWidths, shuffles) * dtypeBytes);
    }

    public static int tileForBudget(int[] layerWidths, int halo, long budgetBytes, int dtypeBytes, int batch) {
        return tileForBudget(layerWidths, null, halo, budgetBytes, dtypeBytes, batch);
    }

    /** Largest square core tile whose windows fit {@code budgetBytes}; throws "budget too small" below 1 pixel. */
    public static int tileForBudget(int[] layerWidths, int[] shuffles, int halo, long budgetBytes, int dtypeBytes,
            int batch) {
        if (dtypeBytes < 1 || batch < 1) {
            throw new MemsrException("dtype bytes and batch must be positive, got " + dtypeBytes + ", " + batch);
        }
        long p = perPixelChannels(layerWidths, shuffles);
        long side = isqrt(Math.floorDiv(budgetBytes, batch * p * dtypeBytes));
        long tile = side - 2L * halo;
        if (tile < 1) {
            long need = peakBytesTiled(layerWidths, shuffles, halo, 1, dtypeBytes, batch);
            throw new MemsrException("budget too small: " + budgetBytes + " bytes; a 1-pixel tile with its "
                    + halo + "-pixel halo needs " + need);
        }
        return (int) Math.min(tile, Integer.MAX_VALUE);
    }

    /** Exact floor(sqrt(n)) for n >= 0 (Python's math.isqrt); the double estimate is corrected both ways. */
    public static long isqrt(long n) {
        if (n < 0) {
            // Python's isqrt raises on negatives; a negative budget is an input error.
            throw new MemsrException("budget must be non-negative, got " + n);
        }
        long r = (long) Math.sqrt((double) n);
        while (r > 0 && r > n / r) {
            r--;
        }
        while (r + 1 <= n / (r + 1)) {
            r++;
        }
        return r;
    }
}
