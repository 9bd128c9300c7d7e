package org.memsr.core;

import java.util.ArrayList;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * The artefact sidecar (ARTEFACT.json beside ARTEFACT.tflite), format fixed by
 * {@code memsr_deploy/formats/sidecar.py}; parsed with org.json (part of Android).
 *
 * <p>{@link #parse} accepts and rejects what {@code read_sidecar(..., check_file=False)} does, with the same
 * messages (for malformed text: the same first words; see {@link JsonValues} for what org.json still lets
 * through); the nested parts the app needs (tensor specs, layout, layer widths) are checked when asked for.
 * Sidecars are strict JSON: a verification PSNR of identical outputs is null, and NaN / Infinity are refused.
 */
public final class Sidecar {
    public static final String FORMAT = "memsr-artefact";
    public static final int VERSION = 1;
    static final String[] TARGETS = {"onnx", "tflite", "coreml"};
    static final String[] PRECISIONS = {"fp32", "fp16", "dynamic", "int8", "int8-uint8io"};
    // The dataclass fields without defaults, in declaration order (Python reports the missing ones).
    static final String[] REQUIRED = {"target", "file", "precision", "scale", "halo", "tile", "layout", "input",
        "output", "source_model"};

    /** dtype, value range and optional affine quantisation of a model input or output tensor. */
    public static final class TensorSpec {
        public final String dtype;
        public final double lo;
        public final double hi;
        public final boolean quantized;
        public final double quantScale;
        public final long zeroPoint;

        TensorSpec(String dtype, double lo, double hi, boolean quantized, double quantScale, long zeroPoint) {
            this.dtype = dtype;
            this.lo = lo;
            this.hi = hi;
            this.quantized = quantized;
            this.quantScale = quantScale;
            this.zeroPoint = zeroPoint;
        }
    }

    public final String source;  // where it was read from, for messages
    public final JSONObject raw;
    public final String target;
    public final String file;
    public final String precision;
    public final int scale;
    public final int halo;
    public final int tile;

    private Sidecar(String source, JSONObject raw) {
        this.source = source;
        this.raw = raw;
        this.target = (String) raw.opt("target");
        this.file = (String) raw.opt("file");
        this.precision = (String) raw.opt("precision");
        this.scale = JsonValues.asInt(raw.opt("scale"), "scale");
        this.halo = JsonValues.asInt(raw.opt("halo"), "halo");
        this.tile = JsonValues.asInt(raw.opt("tile"), "tile");
    }

    /** Parse and validate sidecar text; {@code source} (a file name) prefixes every error message. */
    public static Sidecar parse(String text, String source) {
        Object doc;
        try {
            doc = JsonValues.parse(text);
        } catch (MemsrException e) {
            throw new MemsrException("sidecar is not valid JSON (" + e.getMessage() + ")", source);
        }
        if (!(doc instanceof JSONObject) || !FORMAT.equals(((JSONObject) doc).opt("format"))) {
            throw new MemsrException("not a memsr artefact sidecar (format != '" + FORMAT + "')", source);
        }
        JSONObject d = (JSONObject) doc;
        Object version = JsonValues.get(d, "version");
        if (!isNumber(version, VERSION)) {
            throw new MemsrException("unsupported sidecar version " + pyRepr(version), source);
        }
        List<String> missing = new ArrayList<>();
        for (String k : REQUIRED) {
            if (!d.has(k)) {
                missing.add(k);
            }
        }
        if (!missing.isEmpty()) {
            throw new MemsrException("sidecar is missing fields (" + String.join(", ", missing) + ")", source);
        }
        if (!oneOf(d.opt("target"), TARGETS)) {
            throw new MemsrException("unknown target " + pyRepr(JsonValues.get(d, "target")), source);
        }
        if (!oneOf(d.opt("precision"), PRECISIONS)) {
            throw new MemsrException("unknown precision " + pyRepr(JsonValues.get(d, "precision")), source);
        }
        long sc;
        long halo;
        long tile;
        try {
            sc = JsonValues.asLong(d.opt("scale"), "scale");
            halo = JsonValues.asLong(d.opt("halo"), "halo");
            tile = JsonValues.asLong(d.opt("tile"), "tile");
        } catch (MemsrException e) {
            throw new MemsrException(e.getMessage(), source);
        }
        if ((sc != 2 && sc != 3 && sc != 4) || halo < 0 || tile < 1 || halo > Integer.MAX_VALUE
                || tile > Integer.MAX_VALUE) {
            throw new MemsrException("bad scale/halo/tile (" + pyStr(d.opt("scale")) + "/" + pyStr(d.opt("halo"))
                    + "/" + pyStr(d.opt("tile")) + ")", source);
        }
        return new Sidecar(source, d);
    }

    public String fileSha256() {
        Object v = raw.opt("file_sha256");
        return v instanceof String ? (String) v : "";
    }

    /** [H, W] of a fixed-shape artefact (LR, halo included), or null when the artefact takes any size. */
    public int[] inputShape() {
        Object v = JsonValues.get(raw, "input_shape");
        if (v == null) {
            return null;
        }
        int[] hw = JsonValues.asIntArray(v, "input_shape");
        if (hw.length != 2 || hw[0] < 1 || hw[1] < 1) {
            throw new MemsrException("input_shape must be [H, W] of positive sizes", source);
        }
        return hw;
    }

    public String layoutInput() {
        return layout("input");
    }

    public String layoutOutput() {
        return layout("output");
    }

    private String layout(String which) {
        JSONObject l = JsonValues.asObject(raw.opt("layout"), "layout");
        return JsonValues.asString(l.opt(which), "layout." + which);
    }

    public String channelOrder() {
        Object v = JsonValues.get(raw, "channel_order");
        return v == null ? "RGB" : JsonValues.asString(v, "channel_order");
    }

    public TensorSpec inputSpec() {
        return tensorSpec("input");
    }

    public TensorSpec outputSpec() {
        return tensorSpec("output");
    }

    private TensorSpec tensorSpec(String which) {
        try {
            JSONObject t = JsonValues.asObject(raw.opt(which), which);
            String dtype = JsonValues.asString(t.opt("dtype"), which + ".dtype");
            double[] range = {0.0, 1.0};
            if (JsonValues.get(t, "range") != null) {
                JSONArray r = JsonValues.asArray(t.opt("range"), which + ".range");
                if (r.length() != 2) {
                    throw new MemsrException(which + ".range must be [lo, hi]");
                }
                range[0] = JsonValues.asDouble(r.opt(0), which + ".range[0]");
                range[1] = JsonValues.asDouble(r.opt(1), which + ".range[1]");
                if (!(range[1] > range[0])) {
                    throw new MemsrException(which + ".range must have lo < hi");
                }
            }
            Object q = JsonValues.get(t, "quant");
            if (q == null) {
                return new TensorSpec(dtype, range[0], range[1], false, 0.0, 0);
            }
            JSONObject qm = JsonValues.asObject(q, which + ".quant");
            double qs = JsonValues.asDouble(qm.opt("scale"), which + ".quant.scale");
            long zp = JsonValues.asLong(qm.opt("zero_point"), which + ".quant.zero_point");
            if (!(qs > 0)) {
                throw new MemsrException(which + ".quant.scale must be positive");
            }
            return new TensorSpec(dtype, range[0], range[1], true, qs, zp);
        } catch (MemsrException e) {
            throw new MemsrException(e.reason(), source);
        }
    }

    /** Every conv's output channels (tail last) of the source model, or null when the sidecar lacks them. */
    public int[] layerWidths() {
        Object sm = raw.opt("source_model");
        if (!(sm instanceof JSONObject) || JsonValues.get((JSONObject) sm, "layer_widths") == null) {
            return null;
        }
        try {
            return JsonValues.asIntArray(((JSONObject) sm).opt("layer_widths"), "source_model.layer_widths");
        } catch (MemsrException e) {
            throw new MemsrException(e.reason(), source);
        }
    }

    /** The source model's name, for display. */
    public String modelName() {
        Object sm = raw.opt("source_model");
        Object n = sm instanceof JSONObject ? ((JSONObject) sm).opt("name") : null;
        return n instanceof String ? (String) n : file;
    }

    /**
     * What the Android app can run: a TFLite artefact, NHWC RGB, float32 or 8-bit quantised I/O. Anything else gets
     * one clear message instead of a crash deep in the interpreter.
     */
    public void requireRunnableTflite() {
        if (!"tflite".equals(target)) {
            throw new MemsrException("artefact target is " + target + "; the app runs tflite artefacts", source);
        }
        if (!"NHWC".equals(layoutInput()) || !"NHWC".equals(layoutOutput())) {
            throw new MemsrException("tflite artefact must be NHWC in and out, got " + layoutInput() + "/"
                    + layoutOutput(), source);
        }
        if (!"RGB".equals(channelOrder())) {
            throw new MemsrException("channel order " + channelOrder() + " is not supported (RGB expected)", source);
        }
        checkIo(inputSpec(), "input");
        checkIo(outputSpec(), "output");
        int[] widths = layerWidths();
        if (widths != null && widths.length > 0 && widths[widths.length - 1] != 3 * scale * scale) {
            throw new MemsrException("source_model.layer_widths ends with " + widths[widths.length - 1]
                    + " channels, not 3*s*s = " + 3 * scale * scale, source);
        }
    }

    private void checkIo(TensorSpec t, String which) {
        boolean isInt = "uint8".equals(t.dtype) || "int8".equals(t.dtype);
        if (!"float32".equals(t.dtype) && !isInt) {
            throw new MemsrException(which + " dtype " + t.dtype + " is not supported (float32, uint8, int8)",
                    source);
        }
        if (isInt && !t.quantized) {
            throw new MemsrException(which + " is " + t.dtype + " but the sidecar has no quant parameters", source);
        }
    }

    private static boolean isNumber(Object v, long want) {
        return (v instanceof Integer || v instanceof Long || v instanceof Double) && ((Number) v).doubleValue() == want;
    }

    private static boolean oneOf(Object v, String[] allowed) {
        for (String a : allowed) {
            if (a.equals(v)) {
                return true;
            }
        }
        return false;
    }

    /** Python's repr() for the JSON scalars a message may quote. */
    static String pyRepr(Object v) {
        if (v instanceof String) {
            return "'" + v + "'";
        }
        return pyStr(v);
    }

    /** Python's str() for JSON scalars. */
    static String pyStr(Object v) {
        if (v == null || v == JSONObject.NULL) {
            return "None";
        }
        if (v instanceof Boolean) {
            return (Boolean) v ? "True" : "False";
        }
        return String.valueOf(v);
    }
}
