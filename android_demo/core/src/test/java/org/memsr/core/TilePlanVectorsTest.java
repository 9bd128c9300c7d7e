package org.memsr.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

public class TilePlanVectorsTest {

    @Test
    public void plansMatchPythonExactly() throws Exception {
        int withTiles = 0;
        for (JSONObject c : Vectors.cases("plans")) {
            int h = Vectors.i(c, "height");
            int w = Vectors.i(c, "width");
            int halo = Vectors.i(c, "halo");
            int scale = Vectors.i(c, "scale");
            String where = h + "x" + w + " tile " + Vectors.i(c, "requested_tile") + " halo " + halo;
            TilePlan p = TilePlan.of(h, w, Vectors.i(c, "requested_tile"), halo);
            assertEquals(where, Vectors.i(c, "tile"), p.tile);
            checkAxis(where + " rows", JsonValues.asArray(c.opt("rows"), "rows"), p.rows);
            checkAxis(where + " cols", JsonValues.asArray(c.opt("cols"), "cols"), p.cols);
            assertEquals(where, Vectors.l(c, "count"), p.count());
            if (c.has("tiles")) {
                withTiles++;
                JSONArray tiles = JsonValues.asArray(c.opt("tiles"), "tiles");
                assertEquals(where, tiles.length(), p.count());
                for (int i = 0; i < tiles.length(); i++) {
                    JSONObject t = JsonValues.asObject(tiles.opt(i), "tile");
                    TilePlan.Tile jt = p.get(i);
                    assertEquals(where + " tile " + i + " window", rect(t.opt("window")), jt.window());
                    assertEquals(where + " tile " + i + " crop", rect(t.opt("crop")), jt.crop(scale));
                    assertEquals(where + " tile " + i + " dest", rect(t.opt("dest")), jt.dest(scale));
                }
            }
        }
        assertTrue("vectors list every tile of the small plans", withTiles > 50);
    }

    private static void checkAxis(String where, JSONArray want, List<TilePlan.Axis> got) {
        assertEquals(where + " length", want.length(), got.size());
        for (int i = 0; i < want.length(); i++) {
            JSONObject a = JsonValues.asObject(want.opt(i), "axis");
            TilePlan.Axis g = got.get(i);
            String at = where + "[" + i + "]";
            assertEquals(at + " in_start", Vectors.i(a, "in_start"), g.inStart);
            assertEquals(at + " win", Vectors.i(a, "win"), g.win);
            assertEquals(at + " core_start", Vectors.i(a, "core_start"), g.coreStart);
            assertEquals(at + " core", Vectors.i(a, "core"), g.core);
            assertEquals(at + " offset", Vectors.i(a, "offset"), g.offset());
        }
    }

    private static Rect rect(Object o) {
        int[] r = JsonValues.asIntArray(o, "rect");
        return new Rect(r[0], r[1], r[2], r[3]);
    }

    @Test
    public void badPlansFailWithPythonsMessage() throws Exception {
        for (JSONObject c : Vectors.cases("plan_errors")) {
            try {
                TilePlan.of(Vectors.i(c, "height"), Vectors.i(c, "width"), Vectors.i(c, "tile"),
                        Vectors.i(c, "halo"));
                fail("accepted " + c);
            } catch (IllegalArgumentException e) {
                assertEquals(c.opt("error"), e.getMessage());
            }
        }
    }
}
