package org.memsr.core;

import java.io.Closeable;
import java.io.IOException;

/**
 * Where upscaled tiles go. Tiles arrive in the plan's row-major order; a tile may overlap the previous row band
 * or column (the plan moves the last core back), and overlapping pixels carry identical values.
 */
public interface TileSink extends Closeable {
    /**
     * Place {@code dest.width x dest.height} ARGB pixels read from {@code argb} starting at {@code offset}, with
     * {@code stride} ints between rows, at {@code dest} in the output image.
     */
    void put(Rect dest, int[] argb, int offset, int stride) throws IOException;

    /** All tiles were written: finish the output (a writer fails here if some rows never arrived). */
    @Override
    void close() throws IOException;
}
