package org.memsr.demo;

import android.content.ContentResolver;
import android.content.ContentValues;
import android.net.Uri;
import android.os.Environment;
import android.provider.MediaStore;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/** Saves a finished PNG into the shared gallery (Pictures/MemSR) through MediaStore; no permission on API 29+. */
final class Gallery {
    private Gallery() {
    }

    static Uri savePng(ContentResolver cr, File png, String displayName) throws IOException {
        ContentValues v = new ContentValues();
        v.put(MediaStore.MediaColumns.DISPLAY_NAME, displayName);
        v.put(MediaStore.MediaColumns.MIME_TYPE, "image/png");
        v.put(MediaStore.MediaColumns.RELATIVE_PATH, Environment.DIRECTORY_PICTURES + "/MemSR");
        // Pending: other apps do not see a half-copied file.
        v.put(MediaStore.MediaColumns.IS_PENDING, 1);
        Uri collection = MediaStore.Images.Media.getContentUri(MediaStore.VOLUME_EXTERNAL_PRIMARY);
        Uri item = cr.insert(collection, v);
        if (item == null) {
            throw new IOException("MediaStore refused a new image");
        }
        boolean ok = false;
        try (InputStream in = new FileInputStream(png); OutputStream out = cr.openOutputStream(item)) {
            if (out == null) {
                throw new IOException("cannot write " + item);
            }
            byte[] buf = new byte[1 << 20];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
            }
            ok = true;
        } finally {
            if (!ok) {
                cr.delete(item, null, null);
            }
        }
        v.clear();
        v.put(MediaStore.MediaColumns.IS_PENDING, 0);
        cr.update(item, v, null, null);
        return item;
    }
}
