package org.memsr.demo;

import android.content.ContentResolver;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.graphics.BitmapRegionDecoder;
import android.graphics.ColorSpace;
import android.media.ExifInterface;
import android.net.Uri;
import android.os.Build;
import java.io.Closeable;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import org.memsr.core.MemsrException;
import org.memsr.core.Orientation;
import org.memsr.core.Rect;
import org.memsr.core.TiledUpscaler;

/**
 * The photo as the tiled upscaler reads it: one window at a time with BitmapRegionDecoder, turned upright by
 * its EXIF orientation, so a 100 MP photo never has to be decoded whole.
 */
final class RegionSource implements TiledUpscaler.WindowSource, Closeable {
    private final BitmapRegionDecoder decoder;
    private final int rawWidth;
    private final int rawHeight;
    private final int orientation;
    private final BitmapFactory.Options options = new BitmapFactory.Options();
    private int[] rawBuf = new int[0];

    private RegionSource(BitmapRegionDecoder decoder, int orientation) {
        this.decoder = decoder;
        this.rawWidth = decoder.getWidth();
        this.rawHeight = decoder.getHeight();
        this.orientation = orientation;
        options.inPreferredConfig = Bitmap.Config.ARGB_8888;
        // The model was trained on sRGB: wide-gamut photos are converted, not reinterpreted.
        options.inPreferredColorSpace = ColorSpace.get(ColorSpace.Named.SRGB);
    }

    static RegionSource open(ContentResolver cr, Uri uri) throws IOException {
        int orientation = readOrientation(cr, uri);
        try (InputStream in = openStream(cr, uri)) {
            BitmapRegionDecoder d = Build.VERSION.SDK_INT >= 31
                    ? BitmapRegionDecoder.newInstance(in)
                    : newInstanceLegacy(in);
            if (d == null) {
                throw new MemsrException("not an image that can be decoded by regions (JPEG, PNG, WebP, HEIF)",
                        uri.toString());
            }
            return new RegionSource(d, orientation);
        }
    }

    @SuppressWarnings("deprecation")  // the only form before API 31
    private static BitmapRegionDecoder newInstanceLegacy(InputStream in) throws IOException {
        return BitmapRegionDecoder.newInstance(in, false);
    }

    static InputStream openStream(ContentResolver cr, Uri uri) throws IOException {
        InputStream in = cr.openInputStream(uri);
        if (in == null) {
            throw new FileNotFoundException(uri + ": cannot be opened");
        }
        return in;
    }

    /** EXIF orientation 1..8; 1 when absent or unreadable (PNG, screenshots). */
    static int readOrientation(ContentResolver cr, Uri uri) {
        try (InputStream in = openStream(cr, uri)) {
            int o = new ExifInterface(in).getAttributeInt(ExifInterface.TAG_ORIENTATION,
                    ExifInterface.ORIENTATION_NORMAL);
            return o >= 1 && o <= 8 ? o : 1;
        } catch (IOException | RuntimeException e) {
            return 1;
        }
    }

    int orientation() {
        return orientation;
    }

    @Override
    public int width() {
        return Orientation.displayWidth(rawWidth, rawHeight, orientation);
    }

    @Override
    public int height() {
        return Orientation.displayHeight(rawWidth, rawHeight, orientation);
    }

    @Override
    public void read(Rect window, int[] argb) throws IOException {
        Rect r = Orientation.rawRect(window, rawWidth, rawHeight, orientation);
        Bitmap b = decoder.decodeRegion(new android.graphics.Rect(r.x, r.y, r.right(), r.bottom()), options);
        if (b == null) {
            throw new IOException("could not decode region " + r + " of the photo");
        }
        try {
            if (b.getWidth() != r.width || b.getHeight() != r.height) {
                throw new IOException("decoder returned " + b.getWidth() + "x" + b.getHeight() + " for " + r);
            }
            if (orientation == 1) {
                b.getPixels(argb, 0, r.width, 0, 0, r.width, r.height);
                return;
            }
            if (rawBuf.length < r.width * r.height) {
                rawBuf = new int[r.width * r.height];
            }
            b.getPixels(rawBuf, 0, r.width, 0, 0, r.width, r.height);
            Orientation.toDisplay(rawBuf, window, rawWidth, rawHeight, orientation, argb);
        } finally {
            b.recycle();
        }
    }

    /** An upright copy of the whole photo, downsampled by a power of two to a longer side of at most maxSide. */
    Bitmap preview(int maxSide) throws IOException {
        int sample = 1;
        while (Math.max(rawWidth, rawHeight) / sample > maxSide) {
            sample *= 2;
        }
        BitmapFactory.Options o = new BitmapFactory.Options();
        o.inPreferredConfig = Bitmap.Config.ARGB_8888;
        o.inPreferredColorSpace = options.inPreferredColorSpace;
        o.inSampleSize = sample;
        Bitmap b = decoder.decodeRegion(new android.graphics.Rect(0, 0, rawWidth, rawHeight), o);
        if (b == null) {
            throw new IOException("could not decode the photo");
        }
        return upright(b);
    }

    /** The displayed region {@code window} of the photo at full resolution, as a bitmap. */
    Bitmap region(Rect window) throws IOException {
        int[] px = new int[window.width * window.height];
        read(window, px);
        return Bitmap.createBitmap(px, window.width, window.height, Bitmap.Config.ARGB_8888);
    }

    private Bitmap upright(Bitmap b) {
        if (orientation == 1) {
            return b;
        }
        int w = b.getWidth();
        int h = b.getHeight();
        int[] raw = new int[w * h];
        b.getPixels(raw, 0, w, 0, 0, w, h);
        b.recycle();
        int dw = Orientation.displayWidth(w, h, orientation);
        int dh = Orientation.displayHeight(w, h, orientation);
        int[] shown = new int[dw * dh];
        Orientation.toDisplay(raw, new Rect(0, 0, dw, dh), w, h, orientation, shown);
        return Bitmap.createBitmap(shown, dw, dh, Bitmap.Config.ARGB_8888);
    }

    @Override
    public void close() {
        decoder.recycle();
    }
}
