package org.memsr.core;

/**
 * The memory-budget rule for plain models, ported exactly from {@code memsr_deploy/profiler/budget.py} (the spec).
 *
 * <p>C = [3, *layerWidths] (tail output 3*s*s last); per-pixel live channels
 * P = max(max_i (C[i] + C[i+1]), 2 * C[-1]): two maps alive per conv, and the pixel-shuffle copy of the tail
 * output. A window of side tile + 2*halo needs batch * side^2 * P * dtypeBytes activation bytes. Integer
 * arithmetic throughout so both languages agree to the byte.
 */
public final class MemoryBudget {
    private MemoryBudget() {
    }

    public static int perPixelChannels(int[] layerWidths) {
        if (layerWidths == null || layerWidths.length == 0) {
            throw new MemsrException("layer_widths is empty: the model description is needed for the budget rule");
        }
        int prev = 3;
        int p = 0;
        for (int w : layerWidths) {
            if (w < 1) {
                throw new MemsrException("layer width must be positive, got " + w);
            }
            p = Math.max(p, prev + w);
            prev = w;
        }
        return Math.max(p, 2 * layerWidths[layerWidths.length - 1]);
    }

    public static long peakBytesTiled(int[] layerWidths, int halo, int tile, int dtypeBytes, int batch) {
        long win = tile + 2L * halo;
        return Math.multiplyExact(Math.multiplyExact((long) batch * win, win),
                (long) perPixelChannels(layerWidths) * dtypeBytes);
    }

    /** Largest square core tile whose windows fit {@code budgetBytes}; throws "budget too small" below 1 pixel. */
    public static int tileForBudget(int[] layerWidths, int halo, long budgetBytes, int dtypeBytes, int batch) {
        if (dtypeBytes < 1 || batch < 1) {
            throw new MemsrException("dtype bytes and batch must be positive, got " + dtypeBytes + ", " + batch);
        }
        long p = perPixelChannels(layerWidths);
        long side = isqrt(Math.floorDiv(budgetBytes, batch * p * dtypeBytes));
        long tile = side - 2L * halo;
        if (tile < 1) {
            long need = peakBytesTiled(layerWidths, halo, 1, dtypeBytes, batch);
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
