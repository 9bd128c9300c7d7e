package org.memsr.demo;

import java.io.Closeable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.util.Arrays;
import org.memsr.core.MemsrException;
import org.memsr.core.PixelCodec;
import org.memsr.core.Sidecar;
import org.memsr.core.TiledUpscaler;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;
import org.tensorflow.lite.gpu.CompatibilityList;
import org.tensorflow.lite.gpu.GpuDelegate;

/**
 * The exported student behind the core's SrModel interface: LiteRT's Interpreter with the GPU delegate where
 * CompatibilityList says the device supports it, XNNPACK on the CPU otherwise (or when the GPU fails to take
 * the graph). Create, use and close it on one thread: the GPU delegate is bound to the thread that made it.
 */
final class TfliteModel implements TiledUpscaler.SrModel, Closeable {
    private final MappedByteBuffer modelFile;
    private final Sidecar sidecar;
    private final PixelCodec inCodec;
    private final PixelCodec outCodec;
    private final int threads;
    private volatile Interpreter interpreter;  // read by cancel() from the UI thread
    private GpuDelegate gpu;
    private String accelerator;
    private String fallbackReason;
    private ByteBuffer in;
    private ByteBuffer out;
    private volatile boolean cancelled;

    TfliteModel(MappedByteBuffer modelFile, Sidecar sidecar, boolean preferGpu, int threads) {
        this.modelFile = modelFile;
        this.sidecar = sidecar;
        this.inCodec = new PixelCodec(sidecar.inputSpec());
        this.outCodec = new PixelCodec(sidecar.outputSpec());
        this.threads = threads;
        boolean gpuOk = false;
        if (preferGpu) {
            try (CompatibilityList compat = new CompatibilityList()) {
                if (compat.isDelegateSupportedOnThisDevice()) {
                    gpu = new GpuDelegate(compat.getBestOptionsForThisDevice());
                    build(gpu);
                    gpuOk = true;
                } else {
                    fallbackReason = "GPU not on LiteRT's compatibility list";
                }
            } catch (RuntimeException e) {
                fallbackReason = "GPU delegate failed: " + e.getMessage();
                closeInterpreter();
            }
        }
        if (!gpuOk) {
            build(null);
        }
    }

    private void build(GpuDelegate delegate) {
        Interpreter.Options o = new Interpreter.Options();
        o.setCancellable(true);
        if (delegate != null) {
            o.addDelegate(delegate);
            accelerator = "GPU delegate";
        } else {
            o.setUseXNNPACK(true);
            o.setNumThreads(threads);
            accelerator = "CPU (XNNPACK, " + threads + " threads)";
        }
        interpreter = new Interpreter(modelFile, o);
    }

    String accelerator() {
        return fallbackReason == null ? accelerator : accelerator + "; " + fallbackReason;
    }

    @Override
    public int scale() {
        return sidecar.scale;
    }

    @Override
    public void prepare(int winHeight, int winWidth) {
        int[] fixed = sidecar.inputShape();
        if (fixed != null && (fixed[0] != winHeight || fixed[1] != winWidth)) {
            throw new MemsrException("this artefact has a fixed " + fixed[1] + "x" + fixed[0] + " input but the plan's "
                    + "windows are " + winWidth + "x" + winHeight + "; export with a dynamic shape (no --input-size)",
                    sidecar.source);
        }
        try {
            resize(winHeight, winWidth);
        } catch (RuntimeException e) {
            if (gpu == null) {
                throw e;
            }
            // Some GPU drivers refuse the resized graph: carry on with the CPU rather than fail the photo.
            fallbackReason = "GPU failed at " + winWidth + "x" + winHeight + " (" + e.getMessage() + ")";
            closeInterpreter();
            build(null);
            resize(winHeight, winWidth);
        }
    }

    private void resize(int h, int w) {
        interpreter.resizeInput(0, new int[] {1, h, w, 3});
        interpreter.allocateTensors();
        Tensor ti = interpreter.getInputTensor(0);
        Tensor to = interpreter.getOutputTensor(0);
        checkType(ti, "input");
        checkType(to, "output");
        int s = sidecar.scale;
        int[] want = {1, h * s, w * s, 3};
        if (!Arrays.equals(to.shape(), want)) {
            throw new MemsrException("model output is " + Arrays.toString(to.shape()) + ", expected "
                    + Arrays.toString(want) + " (sidecar scale " + s + ", NHWC)", sidecar.source);
        }
        in = ByteBuffer.allocateDirect(ti.numBytes()).order(ByteOrder.nativeOrder());
        out = ByteBuffer.allocateDirect(to.numBytes()).order(ByteOrder.nativeOrder());
    }

    private void checkType(Tensor t, String which) {
        String dtype = "input".equals(which) ? sidecar.inputSpec().dtype : sidecar.outputSpec().dtype;
        DataType want = "float32".equals(dtype) ? DataType.FLOAT32
                : "int8".equals(dtype) ? DataType.INT8 : DataType.UINT8;
        if (t.dataType() != want) {
            throw new MemsrException("model " + which + " is " + t.dataType() + " but the sidecar says " + dtype,
                    sidecar.source);
        }
    }

    @Override
    public void upscale(int[] argbIn, int winHeight, int winWidth, int[] argbOut) {
        in.clear();
        inCodec.encode(argbIn, 0, winHeight * winWidth, in);
        in.rewind();
        out.clear();
        try {
            interpreter.run(in, out);
        } catch (RuntimeException e) {
            if (cancelled) {  // setCancelled makes run() throw; report it as the cancellation it is
                throw new java.util.concurrent.CancellationException("cancelled during a tile");
            }
            throw e;
        }
        out.rewind();
        int s = sidecar.scale;
        outCodec.decode(out, winHeight * s * winWidth * s, argbOut, 0);
    }

    /** Stop the running tile now (safe from another thread); the upscaler stops before the next one anyway. */
    void cancel() {
        cancelled = true;
        Interpreter i = interpreter;
        if (i != null) {
            try {
                i.setCancelled(true);
            } catch (RuntimeException ignored) {
                // closed meanwhile, or a delegate that cannot be interrupted: the next tile check stops it
            }
        }
    }

    private void closeInterpreter() {
        if (interpreter != null) {
            interpreter.close();
            interpreter = null;
        }
        if (gpu != null) {
            gpu.close();
            gpu = null;
        }
    }

    @Override
    public void close() {
        closeInterpreter();
    }
}
