package org.memsr.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The exact tile plan, a line-for-line port of {@code memsr_deploy/tile_plan.py} (the spec; change it there first).
 *
 * <p>Per axis of length L, core tile T and halo h: n = ceil(L/T) tiles, equal cores c = ceil(L/n), equal windows
 * win = min(L, c + 2h); core i starts at min(i*c, L-c) (the last core moves back rather than thinning) and its
 * window at clamp(core_start - h, 0, L - win). Windows lie inside the image, so each window edge is an image
 * border or at least h pixels from the core: every output pixel equals whole-image inference.
 */
public final class TilePlan {

    /** One tile along one axis, in LR pixels. */
    public static final class Axis {
        public final int inStart;    // window [inStart, inStart + win)
        public final int coreStart;  // core [coreStart, coreStart + core)
        public final int core;
        public final int win;

        Axis(int inStart, int coreStart, int core, int win) {
            this.inStart = inStart;
            this.coreStart = coreStart;
            this.core = core;
            this.win = win;
        }

        /** Core's start inside the window. */
        public int offset() {
            return coreStart - inStart;
        }
    }

    /** A 2-D tile: a row band crossed with a column band. */
    public static final class Tile {
        public final int index;  // row-major position in the plan
        public final Axis y;
        public final Axis x;

        Tile(int index, Axis y, Axis x) {
            this.index = index;
            this.y = y;
            this.x = x;
        }

        /** The LR input window to read. */
        public Rect window() {
            return new Rect(x.inStart, y.inStart, x.win, y.win);
        }

        /** Where the core lies inside the window's upscaled output. */
        public Rect crop(int scale) {
            return new Rect(x.offset() * scale, y.offset() * scale, x.core * scale, y.core * scale);
        }

        /** Where the core goes in the full upscaled output. */
        public Rect dest(int scale) {
            return new Rect(x.coreStart * scale, y.coreStart * scale, x.core * scale, y.core * scale);
        }
    }

    public final int height;
    public final int width;
    public final int tile;  // the core tile actually planned (max(height, width) for "whole image")
    public final int halo;
    public final List<Axis> rows;
    public final List<Axis> cols;

    private TilePlan(int height, int width, int tile, int halo) {
        this.height = height;
        this.width = width;
        this.tile = tile;
        this.halo = halo;
        this.rows = Collections.unmodifiableList(planAxis(height, tile, halo));
        this.cols = Collections.unmodifiableList(planAxis(width, tile, halo));
    }

    /** Plan an image; {@code tile <= 0} means one tile covering the whole image. */
    public static TilePlan of(int height, int width, int tile, int halo) {
        if (tile <= 0) {
            tile = Math.max(height, width);
        }
        return new TilePlan(height, width, tile, halo);
    }

    public static List<Axis> planAxis(int length, int tile, int halo) {
        if (length < 1) {
            throw new IllegalArgumentException("image length must be positive, got " + length);
        }
        if (tile < 1) {
            throw new IllegalArgumentException("tile must be at least 1 pixel, got " + tile);
        }
        if (halo < 0) {
            throw new IllegalArgumentException("halo must be non-negative, got " + halo);
        }
        int n = ceilDiv(length, tile);
        int core = ceilDiv(length, n);
        // long: core + 2*halo may exceed int range for absurd halos; min() brings it back under length.
        int win = (int) Math.min(length, core + 2L * halo);
        List<Axis> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int cs = (int) Math.min((long) i * core, length - core);
            int ins = Math.min(Math.max(cs - halo, 0), length - win);
            out.add(new Axis(ins, cs, core, win));
        }
        return out;
    }

    /** ceil(a / b) for a >= 1, b >= 1 without the overflow of (a + b - 1) / b. */
    static int ceilDiv(int a, int b) {
        return (a - 1) / b + 1;
    }

    public int count() {
        return rows.size() * cols.size();
    }

    /** Tile i in row-major order (the order the output writer expects). */
    public Tile get(int i) {
        if (i < 0 || i >= count()) {
            throw new IndexOutOfBoundsException("tile " + i + " of " + count());
        }
        int nc = cols.size();
        return new Tile(i, rows.get(i / nc), cols.get(i % nc));
    }

    /** Every window has this height (and {@link #windowWidth()}): one model input shape for the whole plan. */
    public int windowHeight() {
        return rows.get(0).win;
    }

    public int windowWidth() {
        return cols.get(0).win;
    }

    public long outputHeight(int scale) {
        return (long) height * scale;
    }

    public long outputWidth(int scale) {
        return (long) width * scale;
    }
}
