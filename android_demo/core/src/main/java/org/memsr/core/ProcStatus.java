package org.memsr.core;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;

/**
 * Resident-memory figures from Linux's /proc/self/status (Android is Linux): VmRSS now and VmHWM, the kernel's
 * own high-water mark of it, which catches short peaks that sampling would miss.
 */
public final class ProcStatus {
    public final long rssBytes;
    public final long peakRssBytes;

    private ProcStatus(long rssBytes, long peakRssBytes) {
        this.rssBytes = rssBytes;
        this.peakRssBytes = peakRssBytes;
    }

    /** Parse status text; a field that is absent reads as -1. */
    public static ProcStatus parse(String text) {
        return new ProcStatus(field(text, "VmRSS:"), field(text, "VmHWM:"));
    }

    public static ProcStatus readSelf() throws IOException {
        byte[] b = Files.readAllBytes(Paths.get("/proc/self/status"));
        return parse(new String(b, StandardCharsets.US_ASCII));
    }

    static long field(String text, String name) {
        for (String line : text.split("\n")) {
            if (line.startsWith(name)) {
                String[] parts = line.substring(name.length()).trim().split("\\s+");
                long v = Long.parseLong(parts[0]);
                if (parts.length > 1 && !"kB".equals(parts[1])) {
                    throw new MemsrException("unexpected unit '" + parts[1] + "' in " + line.trim());
                }
                return v * 1024;
            }
        }
        return -1;
    }
}
