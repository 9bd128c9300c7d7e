package org.memsr.core;

/**
 * A user-facing failure (bad sidecar, budget too small, bad image). The message names the source and the reason
 * in one line, as {@code memsr_deploy.errors.MemsrError} does: "SOURCE: reason", or just "reason".
 */
public class MemsrException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String reason;

    public MemsrException(String reason) {
        this(reason, null);
    }

    public MemsrException(String reason, String source) {
        super(source != null ? source + ": " + reason : reason);
        this.reason = reason;
    }

    /** The message without the source prefix. */
    public String reason() {
        return reason;
    }
}
