package org.memsr.core;

/**
 * A stand-in for the exported student with the same structure that makes tiling exact: {@code layers} 3x3
 * convolutions with zero padding (integer arithmetic, so results are exact), a pointwise activation, then a
 * pixel-shuffle-like expansion to scale x scale output pixels. Receptive radius = layers.
 */
final class FakePlainModel implements TiledUpscaler.SrModel {
    private static final int[] K = {3, -1, 2, 5, 7, -4, 1, 6, -2};
    final int layers;
    final int scale;
    int prepared = 0;
    int calls = 0;

    FakePlainModel(int layers, int scale) {
        this.layers = layers;
        this.scale = scale;
    }

    @Override
    public int scale() {
        return scale;
    }

    @Override
    public void prepare(int winHeight, int winWidth) {
        prepared++;
    }

    @Override
    public void upscale(int[] in, int h, int w, int[] out) {
        calls++;
        int[] a = new int[h * w];
        for (int i = 0; i < a.length; i++) {
            a[i] = in[i] & 0xffffff;
        }
        int[] b = new int[h * w];
        for (int l = 0; l < layers; l++) {
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    int acc = l * 17;  // a bias: zero padding is not zero activation, as in a real net
                    for (int dy = -1; dy <= 1; dy++) {
                        for (int dx = -1; dx <= 1; dx++) {
                            int yy = y + dy;
                            int xx = x + dx;
                            if (yy >= 0 && yy < h && xx >= 0 && xx < w) {
                                acc += K[(dy + 1) * 3 + dx + 1] * a[yy * w + xx];
                            }
                        }
                    }
                    b[y * w + x] = (acc ^ (acc >>> 13)) & 0x3fffffff;  // the "activation"
                }
            }
            int[] t = a;
            a = b;
            b = t;
        }
        int ow = w * scale;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int v = a[y * w + x];
                for (int sy = 0; sy < scale; sy++) {
                    for (int sx = 0; sx < scale; sx++) {
                        int m = v * 31 + sy * 7 + sx * 13;
                        out[(y * scale + sy) * ow + x * scale + sx] = 0xff000000 | (m ^ (m >>> 9)) & 0xffffff;
                    }
                }
            }
        }
    }
}
