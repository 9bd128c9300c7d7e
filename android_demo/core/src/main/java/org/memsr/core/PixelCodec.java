package org.memsr.core;

import java.nio.ByteBuffer;

/**
 * 8-bit ARGB pixels to and from a model's NHWC RGB tensor, by the sidecar's tensor spec, with the same float32
 * arithmetic as the Python runtime ({@code runtime/backends/artefact.py}, {@code runtime/image_io.py}):
 * x = p * (1/255); v = lo + x * (hi - lo) (skipped for [0, 1]); quantised tensors hold q = rint(v / scale) + zp,
 * clipped to the dtype. Back: v = (q - zp) * scale; x = (v - lo) * (1 / (hi - lo)); p = clip(rint(x * 255)).
 * Rounding is half-to-even (numpy's rint, Java's Math.rint). Alpha is ignored on the way in, opaque on the way out.
 */
public final class PixelCodec {
    private static final float INV_255 = (float) (1.0 / 255.0);

    private final String dtype;
    private final boolean unit;  // range is [0, 1]: no affine step, as in Python
    private final float lo;
    private final float span;
    private final float invSpan;
    private final boolean quantized;
    private final float qScale;
    private final float zeroPoint;
    private final int qMin;
    private final int qMax;

    public PixelCodec(Sidecar.TensorSpec spec) {
        this.dtype = spec.dtype;
        this.unit = spec.lo == 0.0 && spec.hi == 1.0;
        this.lo = (float) spec.lo;
        this.span = (float) (spec.hi - spec.lo);
        this.invSpan = (float) (1.0 / (spec.hi - spec.lo));
        this.quantized = spec.quantized;
        this.qScale = (float) spec.quantScale;
        this.zeroPoint = (float) spec.zeroPoint;
        switch (dtype) {
            case "float32":
                qMin = 0;
                qMax = 0;
                break;
            case "uint8":
                qMin = 0;
                qMax = 255;
                break;
            case "int8":
                qMin = -128;
                qMax = 127;
                break;
            default:
                throw new MemsrException("tensor dtype " + dtype + " is not supported (float32, uint8, int8)");
        }
        if (!"float32".equals(dtype) && !quantized) {
            throw new MemsrException(dtype + " tensor without quantisation parameters");
        }
    }

    /** Bytes per channel value in the tensor. */
    public int elementBytes() {
        return "float32".equals(dtype) ? 4 : 1;
    }

    /** Real value the model sees for 8-bit sample p. */
    float real(int p) {
        float x = p * INV_255;
        return unit ? x : lo + x * span;
    }

    /** Append {@code n} pixels of {@code argb} from {@code offset} to {@code dst} as RGB tensor values. */
    public void encode(int[] argb, int offset, int n, ByteBuffer dst) {
        for (int i = 0; i < n; i++) {
            int p = argb[offset + i];
            put(dst, (p >> 16) & 0xff);
            put(dst, (p >> 8) & 0xff);
            put(dst, p & 0xff);
        }
    }

    private void put(ByteBuffer dst, int sample) {
        float v = real(sample);
        if (!quantized) {
            dst.putFloat(v);
            return;
        }
        float q = (float) Math.rint(v / qScale) + zeroPoint;
        dst.put((byte) clamp(q, qMin, qMax));
    }

    /** Read {@code n} RGB pixels from {@code src} into opaque ARGB ints at {@code offset}. */
    public void decode(ByteBuffer src, int n, int[] argb, int offset) {
        for (int i = 0; i < n; i++) {
            int r = get(src);
            int g = get(src);
            int b = get(src);
            argb[offset + i] = 0xff000000 | (r << 16) | (g << 8) | b;
        }
    }

    private int get(ByteBuffer src) {
        float v;
        if (!quantized) {
            v = src.getFloat();
        } else {
            int q = "uint8".equals(dtype) ? src.get() & 0xff : src.get();
            v = ((float) q - zeroPoint) * qScale;
        }
        float x = unit ? v : (v - lo) * invSpan;
        return clamp((float) Math.rint(x * 255f), 0, 255);
    }

    /** numpy's clip then integer cast; NaN (a broken model output) becomes the lower bound, not garbage. */
    static int clamp(float v, int min, int max) {
        if (!(v >= min)) {
            return min;
        }
        return v > max ? max : (int) v;
    }
}
