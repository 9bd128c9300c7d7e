package org.memsr.core;

import static org.junit.Assert.assertEquals;

import java.io.ByteArrayInputStream;
import org.json.JSONObject;
import org.junit.Test;

public class ChecksumVectorsTest {
    @Test
    public void sha256MatchesHashlib() throws Exception {
        for (JSONObject c : Vectors.cases("checksums")) {
            int n = Vectors.i(c, "length");
            byte[] data = new byte[n];
            for (int i = 0; i < n; i++) {
                data[i] = (byte) ((i * 7 + 3) % 256);
            }
            assertEquals("length " + n, c.opt("sha256"), Checksums.sha256Hex(new ByteArrayInputStream(data)));
        }
    }
}
