package org.memsr.demo;

import android.os.Debug;
import java.io.IOException;
import org.memsr.core.ProcStatus;

/**
 * Peak memory of the app during a run, sampled every few milliseconds on its own thread: resident set size
 * (/proc/self/status VmRSS: everything, including the interpreter's and GPU driver's buffers), native heap
 * (Debug.getNativeHeapAllocatedSize) and Java heap (Runtime). VmHWM, the kernel's own high-water mark of the
 * RSS, is read at the end: it covers the whole process lifetime, so it bounds the run's peak from above.
 */
final class MemoryMonitor implements Runnable {
    private static final long PERIOD_MS = 20;
    private volatile boolean running;
    private Thread thread;
    long peakRss;
    long peakNative;
    long peakJava;
    long processPeakRss = -1;

    void start() {
        running = true;
        sample();
        thread = new Thread(this, "memsr-memory");
        thread.setDaemon(true);
        thread.start();
    }

    @Override
    public void run() {
        while (running) {
            sample();
            try {
                Thread.sleep(PERIOD_MS);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private synchronized void sample() {
        Runtime rt = Runtime.getRuntime();
        peakJava = Math.max(peakJava, rt.totalMemory() - rt.freeMemory());
        peakNative = Math.max(peakNative, Debug.getNativeHeapAllocatedSize());
        try {
            peakRss = Math.max(peakRss, ProcStatus.readSelf().rssBytes);
        } catch (IOException | RuntimeException ignored) {
            // /proc unreadable: the heap figures still stand
        }
    }

    void stop() {
        running = false;
        if (thread != null) {
            thread.interrupt();
            try {
                thread.join(500);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        sample();
        try {
            processPeakRss = ProcStatus.readSelf().peakRssBytes;
        } catch (IOException | RuntimeException ignored) {
            processPeakRss = -1;
        }
    }

    synchronized String report() {
        return "peak during run: RSS " + Fmt.mb(peakRss) + ", native heap " + Fmt.mb(peakNative) + ", Java heap "
                + Fmt.mb(peakJava) + "\nprocess peak RSS since start (VmHWM): " + Fmt.mb(processPeakRss);
    }
}
