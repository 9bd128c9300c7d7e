package org.memsr.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.json.JSONObject;
import org.junit.Test;

public class BudgetVectorsTest {

    @Test
    public void tileForBudgetMatchesPython() throws Exception {
        int errors = 0;
        int tiles = 0;
        for (JSONObject c : Vectors.cases("budgets")) {
            int[] widths = JsonValues.asIntArray(c.opt("layer_widths"), "layer_widths");
            int[] sh = JsonValues.asIntArray(c.opt("shuffles"), "shuffles");
            int halo = Vectors.i(c, "halo");
            long budget = Vectors.l(c, "budget");
            int d = Vectors.i(c, "dtype_bytes");
            int batch = Vectors.i(c, "batch");
            String where = c.toString().substring(0, Math.min(200, c.toString().length()));
            assertEquals(where, Vectors.i(c, "per_pixel_channels"), MemoryBudget.perPixelChannels(widths, sh));
            if (c.has("error")) {
                errors++;
                try {
                    int t = MemoryBudget.tileForBudget(widths, sh, halo, budget, d, batch);
                    fail(where + ": Java gave tile " + t + ", Python: " + c.opt("error"));
                } catch (MemsrException e) {
                    assertEquals(where, c.opt("error"), e.getMessage());
                }
            } else {
                tiles++;
                int t = MemoryBudget.tileForBudget(widths, sh, halo, budget, d, batch);
                assertEquals(where, Vectors.i(c, "tile"), t);
                assertEquals(where, Vectors.l(c, "peak_bytes_tiled"),
                        MemoryBudget.peakBytesTiled(widths, sh, halo, t, d, batch));
                assertTrue(where, MemoryBudget.peakBytesTiled(widths, sh, halo, t, d, batch) <= budget);
            }
        }
        assertTrue("both outcomes are covered", errors > 10 && tiles > 100);
    }

    @Test
    public void isqrtIsExactAroundSquares() {
        long[] roots = {0, 1, 2, 3, 46340, 46341, 3037000499L, 3037000498L, 1L << 31, 99999999L};
        for (long r : roots) {
            long sq = r * r;
            assertEquals(r, MemoryBudget.isqrt(sq));
            if (r > 0) {
                assertEquals(r - 1, MemoryBudget.isqrt(sq - 1));
            }
            if (sq + 2 * r >= sq) {  // no overflow: (r+1)^2 - 1
                assertEquals(r, MemoryBudget.isqrt(sq + 2 * r));
            }
        }
        assertEquals(3037000499L, MemoryBudget.isqrt(Long.MAX_VALUE));
    }
}
