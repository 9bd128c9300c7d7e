package org.memsr.demo;

import android.app.Application;
import android.graphics.Bitmap;
import android.graphics.BitmapRegionDecoder;
import android.net.Uri;
import android.os.Build;
import androidx.annotation.NonNull;
import androidx.core.content.FileProvider;
import androidx.lifecycle.AndroidViewModel;
import androidx.lifecycle.LiveData;
import androidx.lifecycle.MutableLiveData;
import androidx.lifecycle.SavedStateHandle;
import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.memsr.core.Rect;
import org.memsr.core.TilePlan;

/**
 * The screen's state and work. It outlives the Activity across rotation, so a running upscale keeps going and its
 * progress and result reach the new Activity through LiveData. The few values that identify the work - the photo,
 * the camera's pending output file, the chosen model, the accelerator choice - also go into the SavedStateHandle,
 * so they survive the system ending the process while the app is in the background (typically while the camera
 * app is in front). Bitmaps and results are not saved: the photo is re-read, an upscale must be run again.
 */
public final class UpscaleViewModel extends AndroidViewModel implements UpscaleJob.Listener {
    private static final String KEY_INPUT = "input";
    private static final String KEY_CAMERA = "pending_camera_uri";
    private static final String KEY_MODEL = "model";  // the sidecar's file name: positions change between builds
    private static final String KEY_GPU = "gpu";
    private static final String KEY_RUNNING = "running";
    private static final int DETAIL_SIDE = 1024;  // output pixels of the 1:1 detail crop

    /** What the split view shows: both halves and their labels, and whether it is the 1:1 detail. */
    static final class Images {
        final Bitmap before;
        final String beforeLabel;
        final Bitmap after;
        final String afterLabel;
        final boolean detail;

        Images(Bitmap before, String beforeLabel, Bitmap after, String afterLabel, boolean detail) {
            this.before = before;
            this.beforeLabel = beforeLabel;
            this.after = after;
            this.afterLabel = afterLabel;
            this.detail = detail;
        }
    }

    private final SavedStateHandle saved;
    private final ExecutorService worker = Executors.newSingleThreadExecutor();
    private final List<ModelAssets.Entry> models = new ArrayList<>();
    private final MutableLiveData<String> status = new MutableLiveData<>();
    private final MutableLiveData<int[]> progress = new MutableLiveData<>(new int[] {0, 1});
    private final MutableLiveData<Boolean> upscaling = new MutableLiveData<>(false);
    private final MutableLiveData<Boolean> saving = new MutableLiveData<>(false);
    private final MutableLiveData<UpscaleJob.Result> result = new MutableLiveData<>();
    private final MutableLiveData<Images> images = new MutableLiveData<>();
    private final LiveData<Uri> input;
    private UpscaleJob job;
    private volatile Bitmap inputPreview;  // written by the worker, read on the main thread

    public UpscaleViewModel(@NonNull Application app, @NonNull SavedStateHandle saved) {
        super(app);
        this.saved = saved;
        this.input = saved.getLiveData(KEY_INPUT);
        List<String> problems = loadModels();
        if (Boolean.TRUE.equals(saved.get(KEY_RUNNING))) {
            saved.set(KEY_RUNNING, false);
            problems.add("the last upscale stopped when the system closed the app: run it again");
        }
        if (!problems.isEmpty()) {
            status.setValue(String.join("\n", problems));
        }
        Uri in = saved.get(KEY_INPUT);
        if (in != null) {  // a new process: show the photo again (its read grant may be gone: then pick it again)
            readPreview(in);
        }
    }

    private List<String> loadModels() {
        List<String> problems = new ArrayList<>();
        try {
            models.addAll(ModelAssets.list(getApplication().getAssets(), problems));
        } catch (IOException e) {
            problems.add("cannot list assets: " + e.getMessage());
        }
        if (models.isEmpty()) {
            problems.add(0, "no TFLite model in the APK: build with memsr-export output (android_demo/README.md)");
        }
        return problems;
    }

    List<ModelAssets.Entry> models() {
        return Collections.unmodifiableList(models);
    }

    LiveData<String> status() {
        return status;
    }

    /** {done, total} tiles of the running upscale. */
    LiveData<int[]> progress() {
        return progress;
    }

    LiveData<Boolean> upscaling() {
        return upscaling;
    }

    LiveData<Boolean> saving() {
        return saving;
    }

    LiveData<UpscaleJob.Result> result() {
        return result;
    }

    LiveData<Images> images() {
        return images;
    }

    LiveData<Uri> input() {
        return input;
    }

    /** Position of the chosen model in {@link #models()}, 0 when none was chosen or it is gone. */
    int selectedModel() {
        String file = saved.get(KEY_MODEL);
        for (int i = 0; i < models.size(); i++) {
            if (models.get(i).sidecar.file.equals(file)) {
                return i;
            }
        }
        return 0;
    }

    void selectModel(int position) {
        if (position >= 0 && position < models.size()) {
            saved.set(KEY_MODEL, models.get(position).sidecar.file);
        }
    }

    boolean useGpu() {
        Boolean gpu = saved.get(KEY_GPU);
        return gpu == null || gpu;
    }

    void setUseGpu(boolean gpu) {
        saved.set(KEY_GPU, gpu);
    }

    /**
     * A new file for the camera app to write a full-size JPEG into (through FileProvider; without an output URI it
     * returns a thumbnail). The URI is saved before the camera starts: this process may be gone when it returns.
     */
    Uri newCameraUri() throws IOException {
        File dir = new File(getApplication().getCacheDir(), "camera");
        if (!dir.isDirectory() && !dir.mkdirs()) {
            throw new IOException("cannot create " + dir);
        }
        Uri current = saved.get(KEY_INPUT);
        File[] old = dir.listFiles();
        if (old != null) {
            for (File f : old) {  // earlier shots, except the one on screen
                if (current == null || !f.getName().equals(current.getLastPathSegment())) {
                    f.delete();
                }
            }
        }
        File shot = new File(dir, "shot_" + System.currentTimeMillis() + ".jpg");
        Uri uri = FileProvider.getUriForFile(getApplication(), getApplication().getPackageName() + ".files", shot);
        saved.set(KEY_CAMERA, uri);
        return uri;
    }

    /** The TakePicture result: the photo is in the file {@link #newCameraUri} made, if the camera app wrote it. */
    void onCameraResult(boolean taken) {
        Uri uri = saved.get(KEY_CAMERA);
        saved.remove(KEY_CAMERA);
        if (taken && uri != null) {
            setInput(uri);
        } else {
            status.setValue("no photo taken");
        }
    }

    void setInput(Uri uri) {
        saved.set(KEY_INPUT, uri);
        result.setValue(null);
        readPreview(uri);
    }

    private void readPreview(Uri uri) {
        status.setValue("reading " + uri.getLastPathSegment() + "...");
        worker.execute(() -> {
            try (RegionSource src = RegionSource.open(getApplication().getContentResolver(), uri)) {
                Bitmap b = src.preview(UpscaleJob.PREVIEW_MAX);
                String info = String.format(Locale.US, "input %dx%d (%s), EXIF orientation %d", src.width(),
                        src.height(), Fmt.mp((long) src.width() * src.height()), src.orientation());
                inputPreview = b;
                images.postValue(new Images(b, "input", null, "", false));
                status.postValue(info);
            } catch (IOException | RuntimeException e) {  // SecurityException: the grant ended with the process
                status.postValue("cannot read the photo: " + e.getMessage() + " (pick it again)");
            }
        });
    }

    void startUpscale() {
        Uri in = saved.get(KEY_INPUT);
        if (in == null || models.isEmpty() || job != null) {
            return;
        }
        ModelAssets.Entry m = models.get(selectedModel());
        File dir = new File(getApplication().getCacheDir(), "result");
        if (!dir.isDirectory() && !dir.mkdirs()) {
            status.setValue("cannot create " + dir);
            return;
        }
        File[] old = dir.listFiles();
        if (old != null) {
            for (File f : old) {  // one result at a time: a x4 100 MP PNG is gigabytes
                f.delete();
            }
        }
        File out = new File(dir, "memsr_x" + m.sidecar.scale + "_" + System.currentTimeMillis() + ".png");
        result.setValue(null);
        progress.setValue(new int[] {0, 1});
        status.setValue("upscaling with " + m.sidecar.file + "...");
        if (inputPreview != null) {
            images.setValue(new Images(inputPreview, "input", null, "", false));
        }
        job = new UpscaleJob(getApplication(), in, m.sidecar, useGpu(), out, this);
        saved.set(KEY_RUNNING, true);
        upscaling.setValue(true);
        worker.execute(job);
    }

    void cancel() {
        if (job != null) {
            job.cancel();
            status.setValue("cancelling...");
        }
    }

    // UpscaleJob.Listener: called on the main thread.

    @Override
    public void onProgress(int done, int total) {
        progress.setValue(new int[] {done, total});
    }

    @Override
    public void onFinished(UpscaleJob.Result r) {
        endJob();
        TilePlan p = r.plan;
        status.setValue(String.format(Locale.US,
                "%s on %s\n%dx%d -> %dx%d (%s), PNG %s\n%d tiles (%d x %d), tile %d, windows %dx%d LR\n"
                        + "time %s upscale (%.1f ms/tile) + %s model load\n"
                        + "activations (budget rule) %s of a %s budget; PNG band %s\n%s",
                r.model, r.accelerator, r.inWidth, r.inHeight, r.outWidth, r.outHeight,
                Fmt.mp((long) r.outWidth * r.outHeight), Fmt.mb(r.png.length()), p.count(), p.rows.size(),
                p.cols.size(), p.tile, p.windowWidth(), p.windowHeight(), Fmt.seconds(r.runNanos),
                r.runNanos / 1e6 / p.count(), Fmt.seconds(r.loadNanos), Fmt.mb(r.activationBytes),
                Fmt.mb(r.budgetBytes), Fmt.mb(r.bandBytes), r.memory));
        result.setValue(r);
        images.setValue(overview(r));
    }

    @Override
    public void onFailed(String message) {
        endJob();
        status.setValue("error: " + message);
    }

    @Override
    public void onCancelled(String message) {
        endJob();
        progress.setValue(new int[] {0, 1});
        status.setValue(message);
    }

    private void endJob() {
        job = null;
        saved.set(KEY_RUNNING, false);
        upscaling.setValue(false);
    }

    private Images overview(UpscaleJob.Result r) {
        return new Images(inputPreview, "input", r.preview, "MemSR x" + r.scale, false);
    }

    void save() {
        UpscaleJob.Result r = result.getValue();
        if (r == null || Boolean.TRUE.equals(saving.getValue())) {
            return;
        }
        saving.setValue(true);
        status.setValue("saving " + Fmt.mb(r.png.length()) + " to Pictures/MemSR...");
        worker.execute(() -> {
            try {
                Uri uri = Gallery.savePng(getApplication().getContentResolver(), r.png, r.png.getName());
                status.postValue("saved to the gallery: Pictures/MemSR/" + r.png.getName() + "\n" + uri);
            } catch (IOException | RuntimeException e) {
                status.postValue("save failed: " + e.getMessage());
            }
            saving.postValue(false);
        });
    }

    /**
     * Overview <-> full-resolution crop around {@code centre} (preview pixels, from the split view): the output
     * region decoded from the PNG, the input region from the photo (drawn enlarged, bilinear) - what the preview
     * cannot show.
     */
    void toggleDetail(float[] centre) {
        UpscaleJob.Result r = result.getValue();
        Images shown = images.getValue();
        Uri in = saved.get(KEY_INPUT);
        if (r == null || in == null) {
            return;
        }
        if (shown != null && shown.detail) {
            images.setValue(overview(r));
            return;
        }
        int s = r.scale;
        int side = Math.max(1, DETAIL_SIDE / s);
        int w = Math.min(side, r.inWidth);
        int h = Math.min(side, r.inHeight);
        int cx = (int) (centre[0] * r.previewFactor / s);
        int cy = (int) (centre[1] * r.previewFactor / s);
        int x0 = Math.max(0, Math.min(cx - w / 2, r.inWidth - w));
        int y0 = Math.max(0, Math.min(cy - h / 2, r.inHeight - h));
        Rect region = new Rect(x0, y0, w, h);
        worker.execute(() -> {
            try (RegionSource src = RegionSource.open(getApplication().getContentResolver(), in)) {
                Bitmap before = src.region(region);
                Bitmap after = decodePngRegion(r.png, new android.graphics.Rect(x0 * s, y0 * s, (x0 + w) * s,
                        (y0 + h) * s));
                images.postValue(new Images(before, "input (bilinear)", after, "MemSR x" + s + " (1:1)", true));
            } catch (IOException | RuntimeException e) {
                status.postValue("detail failed: " + e.getMessage());
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

    @Override
    protected void onCleared() {
        if (job != null) {
            job.cancel();
        }
        worker.shutdown();
    }
}
