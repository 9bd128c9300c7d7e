package org.memsr.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.File;
import org.junit.Assume;
import org.junit.Test;

public class ProcStatusTest {
    @Test
    public void parsesKilobyteFields() {
        String text = "Name:\tjava\nVmPeak:\t  999 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t12\n";
        ProcStatus s = ProcStatus.parse(text);
        assertEquals(100L << 20, s.rssBytes);
        assertEquals(200L << 20, s.peakRssBytes);
        assertEquals(-1, ProcStatus.parse("Name:\tx\n").rssBytes);
    }

    @Test
    public void readsThisProcess() throws Exception {
        Assume.assumeTrue("needs Linux /proc", new File("/proc/self/status").canRead());
        ProcStatus s = ProcStatus.readSelf();
        assertTrue(s.rssBytes > 1 << 20);
        assertTrue(s.peakRssBytes >= s.rssBytes);
    }
}
