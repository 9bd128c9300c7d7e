package org.memsr.core;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONObject;

/**
 * The artefact sidecar (ARTEFACT.json beside ARTEFACT.tflite), format fixed by
 * {@code memsr_deploy/formats/sidecar.py}; parsed with org.json (part of Android).
 *
 * <p>{@link #parse} accepts and rejects what {@code read_sidecar(..., check_file=False)} does, with the same
 * messages (for malformed text: the same first words; see {@link JsonValues} for what org.json still lets
 * through). Every field Python validates is checked there, so the accessors can trust them; the layer widths,
 * which Python leaves unchecked, are checked when asked for.
 * Sidecars are strict JSON: a verification PSNR of identical outputs is null, and NaN / Infinity are refused.
 */
public final class Sidecar {
    public static final String FORMAT = "memsr-artefact";
    public static final int VERSION = 1;
    static final String[] TARGETS = {"onnx", "tflite", "coreml", "ncnn"};
    // sidecar.py's TWO_FILE_TARGETS: their artefact is file + data_file (ncnn: .param + .bin)
    static final String[] TWO_FILE_TARGETS = {"ncnn"};
    static final String[] PRECISIONS = {"fp32", "fp16", "dynamic", "int8", "int8-uint8io"};
    // sidecar.py's REQUIRED, in its order (Python reports the missing ones in this order).
    static final String[] REQUIRED = {"target", "file", "precision", "scale", "halo", "tile", "layout", "input",
        "output", "source_model", "file_sha256"};
    static final String[] DTYPES = {"float32", "float16", "uint8", "int8"};
    static final String[] LAYOUTS = {"NCHW", "NHWC"};

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
        for (String k : new String[] {"scale", "halo", "tile"}) {
            if (!isIntegral(d.opt(k))) {
                throw new MemsrException(k + " must be an integer, got " + pyStr(d.opt(k)), source);
            }
        }
        double sc = ((Number) d.opt("scale")).doubleValue();
        if (sc != 2 && sc != 3 && sc != 4) {
            throw new MemsrException(bad("scale", "must be 2, 3 or 4, got " + pyStr(d.opt("scale"))).reason(), source);
        }
        // the tile loop counts in ints: halo and tile must fit one (Python's limit is the same)
        for (String k : new String[] {"halo", "tile"}) {
            double v = ((Number) d.opt(k)).doubleValue();
            int lo = "halo".equals(k) ? 0 : 1;
            if (v < lo || v > Integer.MAX_VALUE) {
                throw new MemsrException(bad(k, "must be from " + lo + " to " + Integer.MAX_VALUE + ", got "
                        + pyStr(d.opt(k))).reason(), source);
            }
        }
        long halo = ((Number) d.opt("halo")).longValue();
        try {
            checkFields(d, halo);
        } catch (MemsrException e) {
            throw new MemsrException(e.reason(), source);
        }
        return new Sidecar(source, d);
    }

    /** The rest of sidecar.py's validate_sidecar, in its order, so the first failure is the one Python reports. */
    private static void checkFields(JSONObject d, long halo) {
        Object f = d.opt("file");
        if (!isFileName(f)) {
            throw bad("file", "must be a file name beside the sidecar, got " + pyRepr(f));
        }
        Object sha = d.opt("file_sha256");
        if (!isSha256(sha)) {
            throw bad("file_sha256", "must be the artefact's SHA-256 hex digest");
        }
        checkDataFile(d, (String) f);
        checkRadius(d, "receptive_radius", halo, " (they are one number)");
        Object layout = d.opt("layout");
        if (!(layout instanceof JSONObject) || !oneOf(((JSONObject) layout).opt("input"), LAYOUTS)
                || !oneOf(((JSONObject) layout).opt("output"), LAYOUTS)) {
            throw bad("layout", "must give input and output as NCHW or NHWC, got " + pyRepr(layout));
        }
        checkTensor(d, "input");
        checkTensor(d, "output");
        Object shape = JsonValues.get(d, "input_shape");
        if (shape != null && !isHw(shape)) {
            throw bad("input_shape", "must be null or [H, W] of positive integers, got " + pyRepr(shape));
        }
        Object sr = JsonValues.get(d, "shape_range");
        if (sr != null && !isShapeRange(sr)) {
            throw bad("shape_range", "must be null or {min: [h, w], max: [h, w]} with min <= max, got "
                    + pyRepr(sr));
        }
        if (!(d.opt("source_model") instanceof JSONObject)) {
            throw bad("source_model", "must be an object");
        }
        JSONObject sm = (JSONObject) d.opt("source_model");
        checkRadius(sm, "source_model.receptive_radius", halo, "");
        if (sm.has("tail") && !oneOf(sm.opt("tail"), MemoryBudget.TAILS)) {
            throw bad("source_model.tail", "is " + pyRepr(sm.opt("tail")) + "; expected one of "
                    + String.join(", ", MemoryBudget.TAILS));
        }
    }

    /** The second file of a two-file artefact: required for those targets, refused for the others. */
    private static void checkDataFile(JSONObject d, String file) {
        Object data = JsonValues.get(d, "data_file");
        String target = (String) d.opt("target");
        boolean twoFiles = oneOf(target, TWO_FILE_TARGETS);
        if (data != null && !twoFiles) {
            throw bad("data_file", "is given but " + target + " artefacts are one file");
        }
        if (twoFiles) {
            if (!isFileName(data) || data.equals(file)) {
                throw bad("data_file", "must be a file name beside the sidecar other than 'file' (" + target
                        + " artefacts are two files), got " + pyRepr(data));
            }
            if (!isSha256(JsonValues.get(d, "data_sha256"))) {
                throw bad("data_sha256", "must be the SHA-256 hex digest of data_file");
            }
        } else if (JsonValues.get(d, "data_sha256") != null) {
            throw bad("data_sha256", "is given but data_file is not");
        }
    }

    /** A file name with no folder part; "/" is the one separator Python's Path(f).name strips on the platforms
     * memsr writes sidecars from. */
    private static boolean isFileName(Object f) {
        return f instanceof String && !((String) f).isEmpty() && ((String) f).indexOf('/') < 0 && !".".equals(f)
                && !"..".equals(f);
    }

    private static boolean isSha256(Object v) {
        return v instanceof String && ((String) v).matches("[0-9a-f]{64}");
    }

    /** An optional receptive_radius (its last dotted part names the member of {@code o}) must equal halo. */
    private static void checkRadius(JSONObject o, String field, long halo, String note) {
        String key = field.substring(field.lastIndexOf('.') + 1);
        if (o.has(key) && !isNumber(o.opt(key), halo)) {
            throw bad(field, "is " + pyRepr(o.opt(key)) + " but halo is " + halo + note);
        }
    }

    private static void checkTensor(JSONObject d, String side) {
        if (!(d.opt(side) instanceof JSONObject)) {
            throw bad(side, "must be an object");
        }
        JSONObject io = (JSONObject) d.opt(side);
        Object dtype = JsonValues.get(io, "dtype");
        if (!oneOf(dtype, DTYPES)) {
            throw bad(side + ".dtype", "is " + pyRepr(dtype) + "; expected one of " + String.join(", ", DTYPES));
        }
        Object r = JsonValues.get(io, "range");
        if (!isRange(r)) {
            throw bad(side + ".range", "must be [lo, hi] with finite lo < hi, got " + pyRepr(r));
        }
        Object q = JsonValues.get(io, "quant");
        if (q != null && !isQuant(q)) {
            throw bad(side + ".quant", "must be null or {scale > 0, integer zero_point}, got " + pyRepr(q));
        }
        if (q == null && ("uint8".equals(dtype) || "int8".equals(dtype))) {
            throw bad(side + ".quant", "is null but " + side + ".dtype is " + dtype + " (no way to map pixels)");
        }
        if (q != null && ("uint8".equals(dtype) || "int8".equals(dtype))) {
            long zp = ((Number) ((JSONObject) q).opt("zero_point")).longValue();
            int lo = "uint8".equals(dtype) ? 0 : -128;
            int hi = "uint8".equals(dtype) ? 255 : 127;
            if (zp < lo || zp > hi) {
                throw bad(side + ".quant", "zero_point " + zp + " is outside " + dtype + "'s " + lo + ".." + hi);
            }
        }
    }

    private static MemsrException bad(String field, String why) {
        return new MemsrException("sidecar field '" + field + "' " + why);
    }

    /** An integer or a whole finite number (Python's _integral: 2 or 2.0, not True). */
    private static boolean isIntegral(Object v) {
        return isInt(v) || (v instanceof Double && ((Double) v) == Math.rint((Double) v));
    }

    /** A JSON integer (Python's int, which a whole float like 1.0 is not). */
    private static boolean isInt(Object v) {
        return v instanceof Integer || v instanceof Long;
    }

    /** A JSON number; JsonValues.parse has already refused NaN and Infinity. */
    private static boolean isNum(Object v) {
        return isInt(v) || v instanceof Double;
    }

    private static boolean isRange(Object v) {
        if (!(v instanceof JSONArray) || ((JSONArray) v).length() != 2) {
            return false;
        }
        Object lo = ((JSONArray) v).opt(0);
        Object hi = ((JSONArray) v).opt(1);
        return isNum(lo) && isNum(hi) && ((Number) lo).doubleValue() < ((Number) hi).doubleValue();
    }

    private static boolean isQuant(Object v) {
        if (!(v instanceof JSONObject)) {
            return false;
        }
        Object scale = ((JSONObject) v).opt("scale");
        // zero_point must be a JSON integer: Python refuses a whole float (0.0) here, unlike for scale/halo/tile.
        return isNum(scale) && ((Number) scale).doubleValue() > 0 && isInt(((JSONObject) v).opt("zero_point"));
    }

    private static boolean isHw(Object v) {
        if (!(v instanceof JSONArray) || ((JSONArray) v).length() != 2) {
            return false;
        }
        for (int i = 0; i < 2; i++) {
            Object x = ((JSONArray) v).opt(i);
            if (!isInt(x) || ((Number) x).longValue() < 1) {
                return false;
            }
        }
        return true;
    }

    private static boolean isShapeRange(Object v) {
        if (!(v instanceof JSONObject)) {
            return false;
        }
        Object lo = ((JSONObject) v).opt("min");
        Object hi = ((JSONObject) v).opt("max");
        if (!isHw(lo) || !isHw(hi)) {
            return false;
        }
        for (int i = 0; i < 2; i++) {
            if (((JSONArray) lo).optLong(i) > ((JSONArray) hi).optLong(i)) {
                return false;
            }
        }
        return true;
    }

    public String fileSha256() {
        Object v = raw.opt("file_sha256");
        return v instanceof String ? (String) v : "";
    }

    /** The second file of a two-file artefact (ncnn's .bin), or null for one-file artefacts. */
    public String dataFile() {
        Object v = JsonValues.get(raw, "data_file");
        return v instanceof String ? (String) v : null;
    }

    /** The checksum of {@link #dataFile()}, or null for one-file artefacts. */
    public String dataSha256() {
        Object v = JsonValues.get(raw, "data_sha256");
        return v instanceof String ? (String) v : null;
    }

    /** [H, W] of a fixed-shape artefact (LR, halo included), or null when the artefact takes any size. */
    public int[] inputShape() {
        Object v = JsonValues.get(raw, "input_shape");
        if (v == null) {
            return null;
        }
        return JsonValues.asIntArray(v, "input_shape");
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
        JSONObject t = raw.optJSONObject(which);  // parse() has checked it (checkTensor)
        String dtype = t.optString("dtype");
        JSONArray r = t.optJSONArray("range");
        JSONObject q = t.optJSONObject("quant");
        return q == null ? new TensorSpec(dtype, r.optDouble(0), r.optDouble(1), false, 0.0, 0)
                : new TensorSpec(dtype, r.optDouble(0), r.optDouble(1), true, q.optDouble("scale"),
                        q.optLong("zero_point"));
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

    /** The source model's tail: "shuffle" (one conv to 3*s*s, then a pixel shuffle; also when absent) or
     * "upsampler" (EDSR's); parse() has checked it. */
    public String tail() {
        Object sm = raw.opt("source_model");
        Object t = sm instanceof JSONObject ? ((JSONObject) sm).opt("tail") : null;
        return t instanceof String ? (String) t : "shuffle";
    }

    /** The pixel-shuffle factor after each conv of the source model (for the budget rule), or null when the
     * sidecar lacks its layer widths. */
    public int[] shuffles() {
        int[] widths = layerWidths();
        if (widths == null) {
            return null;
        }
        try {
            return MemoryBudget.shuffleAfter(widths.length, scale, tail());
        } catch (MemsrException e) {
            throw new MemsrException("source_model.layer_widths: " + e.reason(), source);
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
        // the tail's last conv writes the sub-pixels of the image (one-conv tail) or the image itself (upsampler)
        boolean upsampler = "upsampler".equals(tail());
        int last = upsampler ? 3 : 3 * scale * scale;
        if (widths != null && widths.length > 0 && widths[widths.length - 1] != last) {
            throw new MemsrException("source_model.layer_widths ends with " + widths[widths.length - 1]
                    + " channels, not " + (upsampler ? "3 (the upsampler tail's output conv)" : "3*s*s = " + last),
                    source);
        }
        if (widths != null) {
            shuffles();   // a tail that does not fit the layer count is refused here, not in the budget rule
        }
    }

    private void checkIo(TensorSpec t, String which) {
        // parse() has already refused 8-bit I/O without quant parameters, as Python does.
        if (!oneOf(t.dtype, new String[] {"float32", "uint8", "int8"})) {
            throw new MemsrException(which + " dtype " + t.dtype + " is not supported (float32, uint8, int8)",
                    source);
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

    /** Python's repr() of a parsed JSON value, for messages (strings are quoted as Python does plain ASCII). */
    static String pyRepr(Object v) {
        if (v instanceof String) {
            return "'" + v + "'";
        }
        StringBuilder b = new StringBuilder();
        if (v instanceof JSONArray) {
            JSONArray a = (JSONArray) v;
            for (int i = 0; i < a.length(); i++) {
                b.append(i == 0 ? "" : ", ").append(pyRepr(a.opt(i)));
            }
            return "[" + b + "]";
        }
        if (v instanceof JSONObject) {
            JSONObject o = (JSONObject) v;
            for (Iterator<String> it = o.keys(); it.hasNext(); ) {
                String k = it.next();
                b.append(b.length() == 0 ? "" : ", ").append(pyRepr(k)).append(": ").append(pyRepr(o.opt(k)));
            }
            return "{" + b + "}";
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
        if (v instanceof Double) {
            return pyFloat((Double) v);
        }
        return String.valueOf(v);
    }

    /** Python's repr() of a finite float: shortest digits, exponent form below 1e-4 and from 1e16 (1e-05, 1e+16). */
    private static String pyFloat(double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e16) {
            return (v == 0 && 1 / v < 0 ? "-" : "") + (long) v + ".0";
        }
        BigDecimal d = new BigDecimal(Double.toString(v)).stripTrailingZeros();
        int exp = d.precision() - d.scale() - 1;
        if (exp >= -4 && exp < 16) {
            return d.toPlainString();
        }
        String digits = d.unscaledValue().abs().toString();
        String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        return (v < 0 ? "-" : "") + mantissa + "e" + (exp < 0 ? "-" : "+") + (Math.abs(exp) < 10 ? "0" : "")
                + Math.abs(exp);
    }
}
