package org.memsr.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.List;
import java.util.Map;
import org.junit.Test;

public class TilePlanVectorsTest {

    @Test
    public void plansMatchPythonExactly() throws Exception {
        int withTiles = 0;
        for (Map<String, Object> c : Vectors.cases("plans")) {
            int h = Vectors.i(c, "height");
            int w = Vectors.i(c, "width");
            int halo = Vectors.i(c, "halo");
            int scale = Vectors.i(c, "scale");
            String where = h + "x" + w + " tile " + Vectors.i(c, "requested_tile") + " halo " + halo;
            TilePlan p = TilePlan.of(h, w, Vectors.i(c, "requested_tile"), halo);
            assertEquals(where, Vectors.i(c, "tile"), p.tile);
            checkAxis(where + " rows", Json.asList(c.get("rows"), "rows"), p.rows);
            checkAxis(where + " cols", Json.asList(c.get("cols"), "cols"), p.cols);
            assertEquals(where, Vectors.l(c, "count"), p.count());
            if (c.containsKey("tiles")) {
                withTiles++;
                List<Object> tiles = Json.asList(c.get("tiles"), "tiles");
                assertEquals(where, tiles.size(), p.count());
                for (int i = 0; i < tiles.size(); i++) {
                    Map<String, Object> t = Json.asObject(tiles.get(i), "tile");
                    TilePlan.Tile jt = p.get(i);
                    assertEquals(where + " tile " + i + " window", rect(t.get("window")), jt.window());
                    assertEquals(where + " tile " + i + " crop", rect(t.get("crop")), jt.crop(scale));
                    assertEquals(where + " tile " + i + " dest", rect(t.get("dest")), jt.dest(scale));
                }
            }
        }
        assertTrue("vectors list every tile of the small plans", withTiles > 50);
    }

    private static void checkAxis(String where, List<Object> want, List<TilePlan.Axis> got) {
        assertEquals(where + " length", want.size(), got.size());
        for (int i = 0; i < want.size(); i++) {
            Map<String, Object> a = Json.asObject(want.get(i), "axis");
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
        int[] r = Json.asIntArray(o, "rect");
        return new Rect(r[0], r[1], r[2], r[3]);
    }

    @Test
    public void badPlansFailWithPythonsMessage() throws Exception {
        for (Map<String, Object> c : Vectors.cases("plan_errors")) {
            try {
                TilePlan.of(Vectors.i(c, "height"), Vectors.i(c, "width"), Vectors.i(c, "tile"),
                        Vectors.i(c, "halo"));
                fail("accepted " + c);
            } catch (IllegalArgumentException e) {
                assertEquals(c.get("error"), e.getMessage());
            }
        }
    }
}
