package org.memsr.demo;

import android.app.Activity;
import android.content.ActivityNotFoundException;
import android.content.Intent;
import android.graphics.Bitmap;
import android.graphics.BitmapRegionDecoder;
import android.net.Uri;
import android.os.Build;
import android.os.Bundle;
import android.os.Handler;
import android.os.Looper;
import android.os.ext.SdkExtensions;
import android.provider.MediaStore;
import android.view.View;
import android.widget.ArrayAdapter;
import android.widget.Button;
import android.widget.CheckBox;
import android.widget.ProgressBar;
import android.widget.Spinner;
import android.widget.TextView;
import androidx.core.content.FileProvider;
import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.memsr.core.Rect;
import org.memsr.core.TilePlan;

/** Pick or shoot a photo, upscale it tile by tile off the UI thread, compare, save to the gallery. */
public class MainActivity extends Activity implements UpscaleJob.Listener {
    private static final int REQ_PICK = 1;
    private static final int REQ_CAMERA = 2;
    private static final int DETAIL_SIDE = 1024;  // output pixels of the 1:1 detail crop

    private final ExecutorService worker = Executors.newSingleThreadExecutor();
    private final Handler main = new Handler(Looper.getMainLooper());
    private Spinner modelSpinner;
    private Button pick;
    private Button camera;
    private Button run;
    private Button cancel;
    private Button save;
    private Button detail;
    private CheckBox gpu;
    private ProgressBar progress;
    private TextView status;
    private SplitView split;

    private final List<ModelAssets.Entry> models = new ArrayList<>();
    private Uri input;
    private Uri cameraUri;
    private Bitmap inputPreview;
    private UpscaleJob job;
    private UpscaleJob.Result result;
    private boolean showingDetail;

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        setContentView(R.layout.activity_main);
        modelSpinner = findViewById(R.id.model);
        pick = findViewById(R.id.pick);
        camera = findViewById(R.id.camera);
        run = findViewById(R.id.run);
        cancel = findViewById(R.id.cancel);
        save = findViewById(R.id.save);
        detail = findViewById(R.id.detail);
        gpu = findViewById(R.id.gpu);
        progress = findViewById(R.id.progress);
        status = findViewById(R.id.status);
        split = findViewById(R.id.split);

        pick.setOnClickListener(v -> pickPhoto());
        camera.setOnClickListener(v -> takePhoto());
        run.setOnClickListener(v -> startUpscale());
        cancel.setOnClickListener(v -> {
            if (job != null) {
                job.cancel();
                status.setText("cancelling...");
            }
        });
        save.setOnClickListener(v -> saveResult());
        detail.setOnClickListener(v -> toggleDetail());
        loadModels();
        updateButtons();
    }

    private void loadModels() {
        List<String> problems = new ArrayList<>();
        try {
            models.addAll(ModelAssets.list(getAssets(), problems));
        } catch (IOException e) {
            problems.add("cannot list assets: " + e.getMessage());
        }
        modelSpinner.setAdapter(new ArrayAdapter<>(this, android.R.layout.simple_spinner_dropdown_item, models));
        if (models.isEmpty()) {
            problems.add(0, "no TFLite model in the APK: build with memsr-export output (android_demo/README.md)");
        }
        if (!problems.isEmpty()) {
            status.setText(String.join("\n", problems));
        }
    }

    /** Photo Picker where the system has it (API 33, or 30+ with SDK extension 2), the document picker otherwise. */
    private void pickPhoto() {
        Intent i;
        boolean photoPicker = Build.VERSION.SDK_INT >= 33
                || (Build.VERSION.SDK_INT >= 30 && SdkExtensions.getExtensionVersion(Build.VERSION_CODES.R) >= 2);
        if (photoPicker) {
            i = new Intent(MediaStore.ACTION_PICK_IMAGES).setType("image/*");
        } else {
            i = new Intent(Intent.ACTION_GET_CONTENT).setType("image/*").addCategory(Intent.CATEGORY_OPENABLE);
        }
        try {
            startActivityForResult(i, REQ_PICK);
        } catch (ActivityNotFoundException e) {
            status.setText("no photo picker on this device");
        }
    }

    /** The camera app writes a full-size JPEG into our cache via FileProvider (else we would get a thumbnail). */
    private void takePhoto() {
        File dir = new File(getCacheDir(), "camera");
        if (!dir.isDirectory() && !dir.mkdirs()) {
            status.setText("cannot create " + dir);
            return;
        }
        File shot = new File(dir, "shot.jpg");
        cameraUri = FileProvider.getUriForFile(this, getPackageName() + ".files", shot);
        Intent i = new Intent(MediaStore.ACTION_IMAGE_CAPTURE)
                .putExtra(MediaStore.EXTRA_OUTPUT, cameraUri)
                .addFlags(Intent.FLAG_GRANT_WRITE_URI_PERMISSION | Intent.FLAG_GRANT_READ_URI_PERMISSION);
        try {
            startActivityForResult(i, REQ_CAMERA);
        } catch (ActivityNotFoundException e) {
            status.setText("no camera app on this device");
        }
    }

    @Override
    protected void onActivityResult(int request, int resultCode, Intent data) {
        super.onActivityResult(request, resultCode, data);
        if (resultCode != RESULT_OK) {
            return;
        }
        if (request == REQ_PICK && data != null && data.getData() != null) {
            setInput(data.getData());
        } else if (request == REQ_CAMERA && cameraUri != null) {
            setInput(cameraUri);
        }
    }

    private void setInput(Uri uri) {
        input = uri;
        result = null;
        showingDetail = false;
        status.setText("reading " + uri.getLastPathSegment() + "...");
        worker.execute(() -> {
            try (RegionSource src = RegionSource.open(getContentResolver(), uri)) {
                Bitmap b = src.preview(UpscaleJob.PREVIEW_MAX);
                String info = String.format(Locale.US, "input %dx%d (%s), EXIF orientation %d", src.width(),
                        src.height(), Fmt.mp((long) src.width() * src.height()), src.orientation());
                main.post(() -> {
                    inputPreview = b;
                    split.setImages(b, "input", null, "");
                    status.setText(info);
                    updateButtons();
                });
            } catch (IOException | RuntimeException e) {
                main.post(() -> status.setText("cannot read the photo: " + e.getMessage()));
            }
        });
        updateButtons();
    }

    private void startUpscale() {
        if (input == null || models.isEmpty() || job != null) {
            return;
        }
        ModelAssets.Entry m = models.get(modelSpinner.getSelectedItemPosition());
        File dir = new File(getCacheDir(), "result");
        if (!dir.isDirectory() && !dir.mkdirs()) {
            status.setText("cannot create " + dir);
            return;
        }
        File[] old = dir.listFiles();
        if (old != null) {
            for (File f : old) {  // one result at a time: a x4 100 MP PNG is gigabytes
                f.delete();
            }
        }
        File out = new File(dir, "memsr_x" + m.sidecar.scale + "_" + System.currentTimeMillis() + ".png");
        result = null;
        showingDetail = false;
        progress.setProgress(0);
        status.setText("upscaling with " + m.sidecar.file + "...");
        job = new UpscaleJob(this, input, m.sidecar, gpu.isChecked(), out, this);
        worker.execute(job);
        updateButtons();
    }

    @Override
    public void onProgress(int done, int total) {
        progress.setMax(total);
        progress.setProgress(done);
    }

    @Override
    public void onFinished(UpscaleJob.Result r) {
        job = null;
        result = r;
        TilePlan p = r.plan;
        status.setText(String.format(Locale.US,
                "%s on %s\n%dx%d -> %dx%d (%s), PNG %s\n%d tiles (%d x %d), tile %d, windows %dx%d LR\n"
                        + "time %s upscale (%.1f ms/tile) + %s model load\n"
                        + "activations (budget rule) %s of a %s budget; PNG band %s\n%s",
                r.model, r.accelerator, r.inWidth, r.inHeight, r.outWidth, r.outHeight,
                Fmt.mp((long) r.outWidth * r.outHeight), Fmt.mb(r.png.length()), p.count(), p.rows.size(),
                p.cols.size(), p.tile, p.windowWidth(), p.windowHeight(), Fmt.seconds(r.runNanos),
                r.runNanos / 1e6 / p.count(), Fmt.seconds(r.loadNanos), Fmt.mb(r.activationBytes),
                Fmt.mb(r.budgetBytes), Fmt.mb(r.bandBytes), r.memory));
        split.setImages(inputPreview, "input", r.preview, "MemSR x" + r.scale);
        updateButtons();
    }

    @Override
    public void onFailed(String message) {
        job = null;
        status.setText("error: " + message);
        updateButtons();
    }

    @Override
    public void onCancelled(String message) {
        job = null;
        progress.setProgress(0);
        status.setText(message);
        updateButtons();
    }

    private void saveResult() {
        UpscaleJob.Result r = result;
        if (r == null) {
            return;
        }
        save.setEnabled(false);
        status.setText("saving " + Fmt.mb(r.png.length()) + " to Pictures/MemSR...");
        worker.execute(() -> {
            try {
                Uri uri = Gallery.savePng(getContentResolver(), r.png, r.png.getName());
                main.post(() -> status.setText("saved to the gallery: Pictures/MemSR/" + r.png.getName()
                        + "\n" + uri));
            } catch (IOException | RuntimeException e) {
                main.post(() -> status.setText("save failed: " + e.getMessage()));
            }
            main.post(this::updateButtons);
        });
    }

    /**
     * Overview <-> full-resolution crop around the view's centre: the output region decoded from the PNG, the
     * input region from the photo (drawn enlarged with bilinear filtering) - what the preview cannot show.
     */
    private void toggleDetail() {
        UpscaleJob.Result r = result;
        if (r == null) {
            return;
        }
        if (showingDetail) {
            showingDetail = false;
            detail.setText(R.string.detail);
            split.setImages(inputPreview, "input", r.preview, "MemSR x" + r.scale);
            return;
        }
        float[] c = split.contentCentre();
        int s = r.scale;
        int side = Math.max(1, DETAIL_SIDE / s);
        int w = Math.min(side, r.inWidth);
        int h = Math.min(side, r.inHeight);
        int cx = (int) (c[0] * r.previewFactor / s);
        int cy = (int) (c[1] * r.previewFactor / s);
        int x0 = Math.max(0, Math.min(cx - w / 2, r.inWidth - w));
        int y0 = Math.max(0, Math.min(cy - h / 2, r.inHeight - h));
        Rect in = new Rect(x0, y0, w, h);
        worker.execute(() -> {
            try (RegionSource src = RegionSource.open(getContentResolver(), input)) {
                Bitmap before = src.region(in);
                Bitmap after = decodePngRegion(r.png, new android.graphics.Rect(x0 * s, y0 * s, (x0 + w) * s,
                        (y0 + h) * s));
                main.post(() -> {
                    showingDetail = true;
                    detail.setText(R.string.overview);
                    split.setImages(before, "input (bilinear)", after, "MemSR x" + s + " (1:1)");
                });
            } catch (IOException | RuntimeException e) {
                main.post(() -> status.setText("detail failed: " + e.getMessage()));
            }
        });
    }

    @SuppressWarnings("deprecation")  // newInstance(String, boolean) is the only form before API 31
    private static Bitmap decodePngRegion(File png, android.graphics.Rect r) throws IOException {
        BitmapRegionDecoder d = Build.VERSION.SDK_INT >= 31
                ? BitmapRegionDecoder.newInstance(png.getPath())
                : BitmapRegionDecoder.newInstance(png.getPath(), false);
        try {
            Bitmap b = d.decodeRegion(r, null);
            if (b == null) {
                throw new IOException("cannot decode " + r + " of " + png.getName());
            }
            return b;
        } finally {
            d.recycle();
        }
    }

    private void updateButtons() {
        boolean busy = job != null;
        pick.setEnabled(!busy);
        camera.setEnabled(!busy);
        modelSpinner.setEnabled(!busy);
        gpu.setEnabled(!busy);
        run.setEnabled(!busy && input != null && !models.isEmpty());
        cancel.setEnabled(busy);
        save.setEnabled(!busy && result != null);
        detail.setEnabled(!busy && result != null);
        progress.setVisibility(busy ? View.VISIBLE : View.INVISIBLE);
    }

    @Override
    protected void onDestroy() {
        if (job != null) {
            job.cancel();
        }
        worker.shutdown();
        super.onDestroy();
    }
}
