package org.memsr.demo;

import android.content.ActivityNotFoundException;
import android.net.Uri;
import android.os.Bundle;
import android.view.View;
import android.widget.AdapterView;
import android.widget.ArrayAdapter;
import android.widget.Button;
import android.widget.CheckBox;
import android.widget.ProgressBar;
import android.widget.Spinner;
import android.widget.TextView;
import androidx.activity.ComponentActivity;
import androidx.activity.result.ActivityResultLauncher;
import androidx.activity.result.PickVisualMediaRequest;
import androidx.activity.result.contract.ActivityResultContracts;
import androidx.lifecycle.ViewModelProvider;
import java.io.IOException;

/**
 * Pick or shoot a photo, upscale it tile by tile off the UI thread, compare, save to the gallery.
 *
 * <p>The Activity only draws: the state and the work live in {@link UpscaleViewModel}, which survives rotation
 * (the Activity is recreated and observes it again) and keeps what identifies the work in saved instance state.
 * Photos come back through the Activity Result APIs, whose results reach a recreated Activity too.
 */
public class MainActivity extends ComponentActivity {
    private UpscaleViewModel vm;
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

    // Registered unconditionally at construction, as the API requires (before the Activity is STARTED).
    private final ActivityResultLauncher<PickVisualMediaRequest> pickPhoto = registerForActivityResult(
            new ActivityResultContracts.PickVisualMedia(), uri -> {
                if (uri != null) {
                    vm.setInput(uri);
                }
            });
    private final ActivityResultLauncher<Uri> takePhoto = registerForActivityResult(
            new ActivityResultContracts.TakePicture(), taken -> vm.onCameraResult(Boolean.TRUE.equals(taken)));

    @Override
    protected void onCreate(Bundle state) {
        super.onCreate(state);
        setContentView(R.layout.activity_main);
        vm = new ViewModelProvider(this).get(UpscaleViewModel.class);
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

        modelSpinner.setAdapter(new ArrayAdapter<>(this, android.R.layout.simple_spinner_dropdown_item,
                vm.models()));
        modelSpinner.setSelection(vm.selectedModel(), false);
        modelSpinner.setOnItemSelectedListener(new AdapterView.OnItemSelectedListener() {
            @Override
            public void onItemSelected(AdapterView<?> parent, View view, int position, long id) {
                vm.selectModel(position);
            }

            @Override
            public void onNothingSelected(AdapterView<?> parent) {
            }
        });
        gpu.setChecked(vm.useGpu());
        gpu.setOnCheckedChangeListener((button, checked) -> vm.setUseGpu(checked));

        // Photo Picker where the system has it (Android 13+, or 11+ with its SDK extension, or Google Play's
        // backport); the contract falls back to the document picker (ACTION_OPEN_DOCUMENT) elsewhere.
        pick.setOnClickListener(v -> launch(() -> pickPhoto.launch(new PickVisualMediaRequest.Builder()
                .setMediaType(ActivityResultContracts.PickVisualMedia.ImageOnly.INSTANCE)
                .build()), "no photo picker on this device"));
        camera.setOnClickListener(v -> takePhoto());
        run.setOnClickListener(v -> vm.startUpscale());
        cancel.setOnClickListener(v -> vm.cancel());
        save.setOnClickListener(v -> vm.save());
        detail.setOnClickListener(v -> vm.toggleDetail(split.contentCentre()));

        vm.status().observe(this, s -> {
            if (s != null) {  // null until there is something to say: the layout's hint stays
                status.setText(s);
            }
        });
        vm.progress().observe(this, p -> {
            progress.setMax(p[1]);
            progress.setProgress(p[0]);
        });
        vm.images().observe(this, im -> {
            split.setImages(im.before, im.beforeLabel, im.after, im.afterLabel);
            detail.setText(im.detail ? R.string.overview : R.string.detail);
        });
        vm.upscaling().observe(this, busy -> updateButtons());
        vm.saving().observe(this, busy -> updateButtons());
        vm.result().observe(this, r -> updateButtons());
        vm.input().observe(this, uri -> updateButtons());
    }

    /** The camera app writes a full-size JPEG into a file of ours (TakePicture with a FileProvider URI). */
    private void takePhoto() {
        Uri uri;
        try {
            uri = vm.newCameraUri();
        } catch (IOException e) {
            status.setText(e.getMessage());
            return;
        }
        launch(() -> takePhoto.launch(uri), "no camera app on this device");
    }

    private void launch(Runnable start, String whenMissing) {
        try {
            start.run();
        } catch (ActivityNotFoundException e) {
            status.setText(whenMissing);
        }
    }

    private void updateButtons() {
        boolean busy = Boolean.TRUE.equals(vm.upscaling().getValue());
        boolean saving = Boolean.TRUE.equals(vm.saving().getValue());
        boolean done = vm.result().getValue() != null;
        boolean models = !vm.models().isEmpty();
        pick.setEnabled(!busy);
        camera.setEnabled(!busy);
        modelSpinner.setEnabled(!busy && models);
        gpu.setEnabled(!busy);
        run.setEnabled(!busy && vm.input().getValue() != null && models);
        cancel.setEnabled(busy);
        save.setEnabled(!busy && !saving && done);
        detail.setEnabled(!busy && done);
        progress.setVisibility(busy ? View.VISIBLE : View.INVISIBLE);
    }
}
