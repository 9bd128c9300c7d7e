package org.memsr.demo;

import android.content.res.AssetFileDescriptor;
import android.content.res.AssetManager;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.memsr.core.Checksums;
import org.memsr.core.MemsrException;
import org.memsr.core.Sidecar;

/** The exported artefacts that Gradle's copyMemsrModels task put into the APK's assets, found by their sidecars. */
final class ModelAssets {
    private ModelAssets() {
    }

    static final class Entry {
        final Sidecar sidecar;

        Entry(Sidecar sidecar) {
            this.sidecar = sidecar;
        }

        @Override
        public String toString() {  // the Spinner's label
            Sidecar s = sidecar;
            return s.file + "  (x" + s.scale + ", " + s.precision + ", halo " + s.halo + ", tile " + s.tile + ")";
        }
    }

    /** Every tflite sidecar in the assets; sidecars that do not parse are reported in {@code problems}. */
    static List<Entry> list(AssetManager am, List<String> problems) throws IOException {
        List<Entry> out = new ArrayList<>();
        String[] names = am.list("");
        if (names == null) {
            return out;
        }
        Arrays.sort(names);
        for (String name : names) {
            if (!name.endsWith(".json")) {
                continue;
            }
            try (InputStream in = am.open(name)) {
                Sidecar sc = Sidecar.parse(readAll(in), name);
                if ("tflite".equals(sc.target)) {
                    out.add(new Entry(sc));
                }
            } catch (MemsrException e) {
                problems.add(e.getMessage());
            }
        }
        return out;
    }

    /** Memory-map the artefact from the APK (stored uncompressed: see noCompress in app/build.gradle). */
    static MappedByteBuffer map(AssetManager am, Sidecar sc) throws IOException {
        // Only the AssetFileDescriptor is closed: the stream shares its descriptor, and a mapping outlives both.
        try (AssetFileDescriptor fd = am.openFd(sc.file)) {
            FileChannel ch = new FileInputStream(fd.getFileDescriptor()).getChannel();
            return ch.map(FileChannel.MapMode.READ_ONLY, fd.getStartOffset(), fd.getDeclaredLength());
        } catch (java.io.FileNotFoundException e) {
            throw new MemsrException("artefact " + sc.file + " named by the sidecar is missing from the assets",
                    sc.source);
        }
    }

    /** The artefact must be the one the sidecar describes (same check as memsr_deploy.sidecar.read_sidecar). */
    static void verify(AssetManager am, Sidecar sc) throws IOException {
        if (sc.fileSha256().isEmpty()) {
            return;
        }
        String got;
        try (InputStream in = am.open(sc.file)) {
            got = Checksums.sha256Hex(in);
        }
        if (!got.equals(sc.fileSha256())) {
            throw new MemsrException("artefact does not match the checksum in its sidecar", sc.file);
        }
    }

    private static String readAll(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        byte[] buf = new byte[8192];
        int n;
        while ((n = in.read(buf)) > 0) {
            b.write(buf, 0, n);
        }
        return new String(b.toByteArray(), StandardCharsets.UTF_8);
    }
}
