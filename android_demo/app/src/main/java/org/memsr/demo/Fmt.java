package org.memsr.demo;

import java.util.Locale;

/** Numbers for the status text. */
final class Fmt {
    private Fmt() {
    }

    static String mb(long bytes) {
        return bytes < 0 ? "n/a" : String.format(Locale.US, "%.1f MB", bytes / 1e6);
    }

    static String mp(long pixels) {
        return String.format(Locale.US, "%.1f MP", pixels / 1e6);
    }

    static String seconds(long nanos) {
        return String.format(Locale.US, "%.2f s", nanos / 1e9);
    }
}
