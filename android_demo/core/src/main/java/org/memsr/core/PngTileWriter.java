package org.memsr.core;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32;
import java.util.zip.Deflater;
import java.util.zip.DeflaterOutputStream;

/**
 * Streams an 8-bit RGB PNG to {@code out} as tiles arrive, holding only one row band (one plan row of tiles:
 * width x core*scale pixels) in memory, so the output never has to fit in RAM as a whole bitmap.
 *
 * <p>A tile starting a new band flushes the rows of the current band above it; the plan's last band may start
 * inside the previous one (its core was moved back), and those rows are then taken from the new band, which
 * holds the same values. Every band must cover the full width, left to right without gaps.
 */
public final class PngTileWriter implements TileSink {
    private static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    private static final int IDAT_BYTES = 1 << 16;
    private static final int FILTER_PAETH = 4;

    private final OutputStream out;
    private final int width;
    private final int height;
    private final DeflaterOutputStream zip;
    private final Deflater deflater;
    private byte[] band = new byte[0];  // RGB rows of the current band
    private int bandY = 0;
    private int bandH = 0;
    private int coveredX = 0;           // band columns [0, coveredX) are written
    private int emitted = 0;            // rows [0, emitted) are in the PNG stream
    private byte[] prevRow;             // Paeth predicts from the row above
    private byte[] filtered;
    private boolean closed;

    public PngTileWriter(OutputStream out, int width, int height, int compressionLevel) throws IOException {
        if (width < 1 || height < 1) {
            throw new IllegalArgumentException("PNG size must be positive, got " + width + "x" + height);
        }
        if ((long) width * 3 + 1 > Integer.MAX_VALUE - 8) {
            throw new MemsrException("PNG row of " + width + " pixels is too long");
        }
        this.out = out;
        this.width = width;
        this.height = height;
        this.prevRow = new byte[width * 3];
        this.filtered = new byte[width * 3 + 1];
        out.write(SIGNATURE);
        byte[] ihdr = new byte[13];
        putInt(ihdr, 0, width);
        putInt(ihdr, 4, height);
        ihdr[8] = 8;   // bit depth
        ihdr[9] = 2;   // colour type: truecolour RGB
        // compression 0, filter method 0, no interlace
        writeChunk(out, "IHDR", ihdr, ihdr.length);
        deflater = new Deflater(compressionLevel);
        zip = new DeflaterOutputStream(new IdatStream(out), deflater, IDAT_BYTES);
    }

    @Override
    public void put(Rect dest, int[] argb, int offset, int stride) throws IOException {
        if (closed) {
            throw new IllegalStateException("writer is closed");
        }
        if (dest.x < 0 || dest.right() > width || dest.y < 0 || dest.bottom() > height) {
            throw new IllegalArgumentException(dest + " lies outside the " + width + "x" + height + " output");
        }
        if (dest.y != bandY || bandH == 0) {
            startBand(dest);
        }
        if (dest.height != bandH) {
            throw new IllegalArgumentException("tile height " + dest.height + " differs from its band's " + bandH);
        }
        if (dest.x > coveredX) {
            throw new IllegalArgumentException("tile at x=" + dest.x + " leaves columns " + coveredX + ".."
                    + (dest.x - 1) + " of the band at y=" + bandY + " unwritten");
        }
        for (int r = 0; r < dest.height; r++) {
            int src = offset + r * stride;
            int dst = (r * width + dest.x) * 3;
            for (int c = 0; c < dest.width; c++) {
                int p = argb[src + c];
                band[dst++] = (byte) (p >> 16);
                band[dst++] = (byte) (p >> 8);
                band[dst++] = (byte) p;
            }
        }
        coveredX = Math.max(coveredX, dest.right());
    }

    private void startBand(Rect dest) throws IOException {
        if (bandH > 0) {
            if (dest.y < bandY) {
                throw new IllegalArgumentException("tile at y=" + dest.y + " arrives after the band at y=" + bandY
                        + " (tiles must come in row-major order)");
            }
            if (dest.y > bandY + bandH) {
                throw new IllegalArgumentException("rows " + (bandY + bandH) + ".." + (dest.y - 1)
                        + " were skipped");
            }
            if (dest.bottom() < bandY + bandH) {
                throw new IllegalArgumentException("the band at y=" + dest.y + " ends above the previous one");
            }
            finishBand(dest.y);
        } else if (dest.y != 0) {
            throw new IllegalArgumentException("the first tile must start at row 0, not " + dest.y);
        }
        long bytes = (long) dest.height * width * 3;
        if (bytes > Integer.MAX_VALUE - 8) {
            throw new MemsrException("a band of " + dest.height + " rows x " + width + " pixels is too large; "
                    + "use a smaller tile");
        }
        if (band.length < bytes) {
            band = new byte[(int) bytes];
        }
        bandY = dest.y;
        bandH = dest.height;
        coveredX = 0;
    }

    /** Emit the band's rows [emitted, until) to the PNG stream. */
    private void finishBand(int until) throws IOException {
        if (coveredX != width) {
            throw new IllegalArgumentException("the band at y=" + bandY + " covers only columns 0.."
                    + (coveredX - 1) + " of " + width);
        }
        for (int y = emitted; y < until; y++) {
            writeRow(band, (y - bandY) * width * 3);
        }
        emitted = Math.max(emitted, until);
    }

    private void writeRow(byte[] src, int off) throws IOException {
        int n = width * 3;
        filtered[0] = FILTER_PAETH;
        for (int i = 0; i < n; i++) {
            int a = i >= 3 ? src[off + i - 3] & 0xff : 0;
            int b = prevRow[i] & 0xff;
            int c = i >= 3 ? prevRow[i - 3] & 0xff : 0;
            filtered[i + 1] = (byte) (src[off + i] - paeth(a, b, c));
        }
        zip.write(filtered, 0, n + 1);
        System.arraycopy(src, off, prevRow, 0, n);
    }

    static int paeth(int a, int b, int c) {
        int p = a + b - c;
        int pa = Math.abs(p - a);
        int pb = Math.abs(p - b);
        int pc = Math.abs(p - c);
        if (pa <= pb && pa <= pc) {
            return a;
        }
        return pb <= pc ? b : c;
    }

    /** Rows written so far (for progress and for checking a cancelled run wrote nothing half-way it claims). */
    public int rowsEmitted() {
        return emitted;
    }

    @Override
    public void close() throws IOException {
        if (closed) {
            return;
        }
        closed = true;
        try {
            if (bandH == 0) {
                throw new IOException("no tiles were written to the " + width + "x" + height + " PNG");
            }
            if (coveredX != width) {
                throw new IOException("PNG incomplete: the band at y=" + bandY + " covers only columns 0.."
                        + (coveredX - 1) + " of " + width);
            }
            finishBand(bandY + bandH);
            if (emitted != height) {
                throw new IOException("PNG incomplete: rows " + emitted + ".." + (height - 1) + " never arrived");
            }
            zip.finish();
            zip.flush();
            writeChunk(out, "IEND", new byte[0], 0);
            out.flush();
        } finally {
            deflater.end();
        }
    }

    private static void putInt(byte[] b, int off, int v) {
        b[off] = (byte) (v >>> 24);
        b[off + 1] = (byte) (v >>> 16);
        b[off + 2] = (byte) (v >>> 8);
        b[off + 3] = (byte) v;
    }

    static void writeChunk(OutputStream out, String type, byte[] data, int len) throws IOException {
        byte[] head = new byte[8];
        putInt(head, 0, len);
        byte[] t = type.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(t, 0, head, 4, 4);
        CRC32 crc = new CRC32();
        crc.update(t, 0, 4);
        crc.update(data, 0, len);
        byte[] tail = new byte[4];
        putInt(tail, 0, (int) crc.getValue());
        out.write(head);
        out.write(data, 0, len);
        out.write(tail);
    }

    /** Packs the zlib stream into IDAT chunks of at most IDAT_BYTES. */
    private static final class IdatStream extends OutputStream {
        private final OutputStream out;
        private final byte[] buf = new byte[IDAT_BYTES];
        private int n;

        IdatStream(OutputStream out) {
            this.out = out;
        }

        @Override
        public void write(int b) throws IOException {
            buf[n++] = (byte) b;
            if (n == buf.length) {
                flush();
            }
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            while (len > 0) {
                int k = Math.min(len, buf.length - n);
                System.arraycopy(b, off, buf, n, k);
                n += k;
                off += k;
                len -= k;
                if (n == buf.length) {
                    flush();
                }
            }
        }

        @Override
        public void flush() throws IOException {
            if (n > 0) {
                writeChunk(out, "IDAT", buf, n);
                n = 0;
            }
        }

        @Override
        public void close() throws IOException {
            flush();
        }
    }
}
