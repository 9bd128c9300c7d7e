package org.memsr.core;

import java.io.IOException;

/** Sends every tile to several sinks (the streamed file and the on-screen preview). */
public final class TeeSink implements TileSink {
    private final TileSink[] sinks;

    public TeeSink(TileSink... sinks) {
        this.sinks = sinks.clone();
    }

    @Override
    public void put(Rect dest, int[] argb, int offset, int stride) throws IOException {
        for (TileSink s : sinks) {
            s.put(dest, argb, offset, stride);
        }
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        for (TileSink s : sinks) {
            try {
                s.close();
            } catch (IOException e) {
                if (first == null) {
                    first = e;
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }
}
